"""Files hashed as they are copied: the sha256 and size that artifact and checkpoint manifests list per file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    """What a file's bytes hash to, as read back from storage."""

    sha256: str
    size: int


@dataclass(frozen=True)
class FileEntry:
    """One file of a manifest: its path relative to the folder (POSIX separators), size and sha256."""

    path: str
    size: int
    sha256: str

    def matches(self, digest: FileDigest) -> bool:
        return digest.size == self.size and digest.sha256 == self.sha256


def copy_hashed(source: Any, sink: Any = None, chunk_bytes: int = CHUNK_BYTES) -> FileDigest:
    """Read ``source`` (a binary stream) to its end, writing each chunk to ``sink`` when given; returns the digest
    of the bytes read."""
    digest, size = hashlib.sha256(), 0
    while chunk := source.read(chunk_bytes):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return FileDigest(digest.hexdigest(), size)


def hash_local_files(folder: Path) -> list[FileEntry]:
    """Every file under the local ``folder``, sorted by relative path, with its size and sha256."""
    entries = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            digest = copy_hashed(handle)
        entries.append(FileEntry(path.relative_to(folder).as_posix(), digest.size, digest.sha256))
    return entries
