"""Named blobs in a local (or shared-mount) folder, each replaced atomically: the aggregation actors' checkpoints (one
file per actor) and their health records."""

from __future__ import annotations

import os
from pathlib import Path


class AtomicFileStore:
    """Checkpoints under a local (or shared-mount) directory; a write is all or nothing (temp file + rename)."""

    def __init__(self, directory: str | Path, suffix: str = ".ckpt") -> None:
        self.directory = Path(directory)
        self.suffix = suffix

    def path(self, name: str) -> Path:
        return self.directory / f"{name}{self.suffix}"

    def names(self) -> list[str]:
        if not self.directory.exists():
            return []
        return sorted(p.name[: -len(self.suffix)] for p in self.directory.glob(f"*{self.suffix}"))

    def save(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        temp = target.with_suffix(f".tmp{os.getpid()}")
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)

    def load(self, name: str) -> bytes | None:
        target = self.path(name)
        return target.read_bytes() if target.exists() else None

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
