"""Palette: the feature store (catalog, schema registry, lineage, the feature DSL, stores, pipelines)."""
