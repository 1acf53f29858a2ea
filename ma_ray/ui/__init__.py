"""The ma-ray web UI: features, lineage, models, jobs and serving latency, as server-rendered pages over the
same APIs the CLI uses (`build_ui`); `apps.ui` serves it on Ray Serve at ``/ui``, `ma-ray ui` locally."""

from ma_ray.ui.app import PAGES, build_ui, ray_metrics_urls
from ma_ray.ui.chart import Chart, training_curve
from ma_ray.ui.csrf import csrf_problem
from ma_ray.ui.graph import GraphLayout, layout
from ma_ray.ui.serving import latency_table, quantile, staleness_table
from ma_ray.ui.views import schema_diff

__all__ = [
    "PAGES",
    "Chart",
    "GraphLayout",
    "build_ui",
    "csrf_problem",
    "latency_table",
    "layout",
    "quantile",
    "ray_metrics_urls",
    "schema_diff",
    "staleness_table",
    "training_curve",
]
