"""The web UI as a user sees it: `ma-ray ui` started as a user starts it, and headless Chromium (Debian's
`chromium` and `chromium-driver`, installed like `ma-ray services up` installs Redis) driven by Selenium."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ma_ray.services import install_debian_packages
from tests.polling import wait_for

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[1]


def ensure_chromium() -> None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        install_debian_packages("chromium", "chromium-driver")


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium with its console log kept; flags as a closed network needs (no background fetches)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ensure_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: object) -> list[str]:
    """The page's console errors since the last call (SEVERE: script errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]  # type: ignore[attr-defined]


@contextmanager
def ui_server(cli: str, env: dict[str, str], port: int) -> Iterator[str]:
    """`ma-ray ui --port <port>` in ``env``, as a user starts it; yields the UI's base URL once it answers."""
    process = subprocess.Popen(
        [cli, "ui", "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}/ui"

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(
                f"ma-ray ui exited {process.returncode}: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(f"{base}/features", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_for(answers, 60, f"ma-ray ui answering at {base}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def screenshots(fallback: Path) -> Path:
    """Where page screenshots go: ``MA_RAY_UI_SCREENSHOTS`` (``docs/ui`` makes the README's), else ``fallback``."""
    import os

    wanted = os.environ.get("MA_RAY_UI_SCREENSHOTS")
    folder = ROOT / wanted if wanted else fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def which_cli() -> str:
    found = shutil.which("ma-ray", path=str(ROOT / ".venv" / "bin"))
    assert found, "the venv's ma-ray is missing: make install"
    return found
