"""A storage URI as the ``pyarrow.fs`` filesystem and the path inside it that every store reads and writes."""

from __future__ import annotations

import os

import pyarrow.fs as pafs


def filesystem_and_path(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of a URI (``s3://``, ``gs://``, ``file://``, ...) or of a plain local path, which may
    be relative (taken from the working directory: `FileSystem.from_uri` needs an absolute one). The path has no
    trailing ``/``, so callers append ``/<name>``."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/")
