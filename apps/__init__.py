"""Deployables: Ray Serve applications and `ray job submit` entrypoints (`python -m apps.<name>`)."""
