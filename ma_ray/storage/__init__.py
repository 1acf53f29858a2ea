"""Storage mechanisms every subsystem shares: a URI's filesystem, and files hashed as they are copied.

Offline snapshots, pipeline runs, raw data, Gallery artifacts and training checkpoints all live on any
``pyarrow.fs`` filesystem (a local path, ``file://``, ``s3://``, ``gs://``, ``hdfs://``) and the last two are folders
listed in a manifest of per-file sizes and sha256 digests; both ideas are written once, here.
"""

from ma_ray.storage.digests import CHUNK_BYTES, FileDigest, FileEntry, copy_hashed, hash_local_files
from ma_ray.storage.uri import filesystem_and_path

__all__ = ["CHUNK_BYTES", "FileDigest", "FileEntry", "copy_hashed", "filesystem_and_path", "hash_local_files"]
