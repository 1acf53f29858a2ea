"""The web UI in a real browser after `make demo`: `ma-ray ui` started as the newcomer starts it (PATH without
the venv, the demo's state), each page loaded in headless Chromium with no console error and its key content
visible, and markup in user-given text shown, never run. Screenshots go to a temporary folder, or to `docs/ui/`
with MA_RAY_UI_SCREENSHOTS=docs/ui (how the README's pictures are made)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ma_ray.config import load_settings
from ma_ray.gallery import Gallery
from tests.browser import chromium, console_errors, screenshots, ui_server
from tests.e2e.conftest import NewcomerDemo
from tests.ports import free_port

pytestmark = pytest.mark.e2e
SCRIPTS = '<script>window.__ran = 1</script><img src="x" onerror="window.__ran = 2">'


@pytest.fixture(scope="module")
def demo_ui(newcomer_demo: NewcomerDemo) -> Iterator[str]:
    assert newcomer_demo.returncode == 0
    with ui_server(newcomer_demo.cli, newcomer_demo.env, free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshots(tmp_path_factory.mktemp("ui_screenshots"))


def facts(demo: NewcomerDemo) -> dict:
    return {k: v for stage in demo.summary["stages"] for k, v in stage.get("figures", {}).items()}


def pages(demo: NewcomerDemo) -> list[tuple[str, str, str, str]]:
    """(screenshot name, path, CSS selector that must be visible, text it must hold) for each page."""
    found = facts(demo)
    model = str(found["model_version"]).split(":")[0]
    job = found["training_job"]
    return [
        ("features", "/features", "main", "rideshare.driver_stats"),
        ("feature-group", "/features/rideshare/driver_stats", "dl.facts", "newest snapshot"),
        (
            "lineage",
            "/lineage?node=group:rideshare:driver_stats&direction=downstream",
            "#lineage-graph",
            "driver_stats",
        ),
        ("models", "/models", "#models", model),
        ("demo-model", f"/models/{model}", "#alias-production", "production"),
        ("jobs", "/jobs", "main table", job),
        ("job", f"/jobs/{job}", "#training-curve", ""),
        ("serving-without-ray", "/serving", "#latency", "stage"),  # the demo's Ray is gone
    ]


def test_every_page_loads_without_console_errors(
    browser: object, demo_ui: str, newcomer_demo: NewcomerDemo, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    for name, path, selector, text in pages(newcomer_demo):
        browser.get(demo_ui + path)  # type: ignore[attr-defined]
        element = browser.find_element(By.CSS_SELECTOR, selector)  # type: ignore[attr-defined]
        assert element.is_displayed() and text in element.text + element.get_attribute("outerHTML"), (name, text)
        assert console_errors(browser) == [], (name, path)
        browser.save_screenshot(str(shots / f"{name}.png"))  # type: ignore[attr-defined]


def test_markup_in_user_text_is_shown_never_run(browser: object, demo_ui: str, newcomer_demo: NewcomerDemo) -> None:
    from selenium.webdriver.common.by import By

    settings = load_settings(state_dir=newcomer_demo.state_dir)
    gallery = Gallery.from_settings(settings)
    try:
        gallery.register_model(name="markup_probe", owner=SCRIPTS, tier=4, framework="xgboost", description=SCRIPTS,
                               tags={"note": SCRIPTS})  # fmt: skip
    finally:
        gallery.close()
    for path in ("/models", "/models/markup_probe"):
        browser.get(demo_ui + path)  # type: ignore[attr-defined]
        assert browser.execute_script("return window.__ran === undefined")  # type: ignore[attr-defined]
        assert "<script>window.__ran = 1</script>" in browser.find_element(By.TAG_NAME, "main").text  # type: ignore[attr-defined]
