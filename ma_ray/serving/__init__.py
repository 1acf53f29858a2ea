"""Prediction-path logic: feature resolution, circuit breakers (and, with the serving issue, placement)."""
