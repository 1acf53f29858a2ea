"""Ray actors: long-lived, stateful wrappers that put ma_ray objects to work inside a cluster."""
