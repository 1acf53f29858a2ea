"""Training-job scheduling: resource vectors, the cluster registry, the tiered scheduler and its simulator."""
