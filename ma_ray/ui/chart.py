"""A training curve as SVG polylines: each metric of a run's history (``{"step": n, "<metric>": value}``) scaled
into one box. Pure; the page draws the polylines and labels the axes with the ranges returned."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

WIDTH_PX = 640
HEIGHT_PX = 240
PAD_PX = 36


@dataclass(frozen=True)
class Series:
    metric: str
    points: str  # "x,y x,y ..." for <polyline points>
    first: float
    last: float


@dataclass(frozen=True)
class Chart:
    series: tuple[Series, ...]
    steps: tuple[float, float]
    values: tuple[float, float]
    width: int = WIDTH_PX
    height: int = HEIGHT_PX
    pad: int = PAD_PX


def training_curve(history: Sequence[Mapping[str, float]]) -> Chart | None:
    """Every metric against ``step``; None when the history has fewer than two steps or no finite value."""
    rows = [r for r in history if isinstance(r.get("step"), int | float)]
    metrics = sorted({k for r in rows for k, v in r.items() if k != "step" and _finite(v)})
    values = [float(r[m]) for r in rows for m in metrics if _finite(r.get(m))]
    if len(rows) < 2 or not values:
        return None
    steps = (min(r["step"] for r in rows), max(r["step"] for r in rows))
    low, high = min(values), max(values)
    series = []
    for metric in metrics:
        found = [(float(r["step"]), float(r[metric])) for r in rows if _finite(r.get(metric))]
        points = " ".join(f"{_scale(s, steps, WIDTH_PX):.1f},{_scale(v, (low, high), HEIGHT_PX, True):.1f}"
                          for s, v in found)  # fmt: skip
        series.append(Series(metric, points, found[0][1], found[-1][1]))
    return Chart(tuple(series), steps, (low, high))


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _scale(value: float, span: tuple[float, float], size: int, flip: bool = False) -> float:
    low, high = span
    fraction = (value - low) / (high - low) if high > low else 0.5
    return PAD_PX + (1 - fraction if flip else fraction) * (size - 2 * PAD_PX)
