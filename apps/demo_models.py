"""The demo's model: trip minutes from driver features, the time of the request and the route's distance.

One definition for its three stages: `apps.demo_train` trains it as a job through the job controller,
`apps.demo_deploy` deploys it and asks it over HTTP, with these same inputs.
"""

from __future__ import annotations

from ma_ray.gallery import InputSignature

MODEL = "eta_minutes"
STATS = "@palette:rideshare:driver_stats:{}:driver_id"
SIGNATURE = InputSignature(
    features=(
        STATS.format("trip_count_7d"),
        STATS.format("rating_avg"),
        STATS.format("acceptance_rate"),
        STATS.format("avg_trip_distance"),
        "@palette:rideshare:driver_model_inputs:reliability_score:driver_id",
    ),
    transforms={
        "request_hour": "hour(@basis:request_ts)",
        "peak": "hour(@basis:request_ts) in [7, 8, 9, 17, 18, 19]",
        "route_km": "@basis:distance_km",
    },
)
TRAINING_DAYS = 5
