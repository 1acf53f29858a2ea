"""Model artifacts on a serving node's local disk: fetched (and verified) once per node, then loaded from there
by every replica on the node, in the framework's native format (the seed's "CDN caching, pre-warming" and
"memory-mapped model files").

Entries are content-addressed by the artifact's checksum, so an entry never goes stale: the same checksum is the
same bytes. A fetch goes to a staging directory and is renamed into place with its manifest, under a file lock
that serializes replicas (processes) fetching the same artifact; a reader never sees a half-written entry.

With a disk budget (``max_bytes``), each fetch is followed by a prune: least recently used entries (a hit touches
the entry's mtime) are evicted until the cache fits, except the one just fetched and those pinned by a live
process (:meth:`LocalArtifactCache.pin`, one file per process under ``.pins``). An evicted entry is renamed to a
``.trash-*`` directory before it is deleted, so a reader sees a whole entry or none.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ma_ray.gallery import MANIFEST, ArtifactStore, CorruptArtifactError, Manifest

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "ma_ray_artifact_cache"
PINS = ".pins"
PRUNE_LOCK = ".prune.lock"
TRASH_PREFIX = ".trash-"
_ENTRY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class LocalArtifact:
    path: Path
    manifest: Manifest
    fetched: bool  # False: it was on this node's disk already


@dataclass(frozen=True)
class _Entry:
    mtime: float
    name: str
    size: int


def _name(checksum: str) -> str:
    return checksum.removeprefix("sha256:")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _victims(entries: list[_Entry], keep: set[str], budget: int) -> list[_Entry]:
    """Least recently used first (then by name, for equal mtimes), skipping ``keep``, until the rest fits."""
    total = sum(e.size for e in entries)
    victims = []
    for entry in sorted(entries, key=lambda e: (e.mtime, e.name)):
        if total <= budget:
            break
        if entry.name not in keep:
            victims.append(entry)
            total -= entry.size
    return victims


class LocalArtifactCache:
    """The node's artifact cache under ``root``; ``max_bytes`` bounds its disk use (None: unbounded).

    Pins are checked by pid, so every process sharing ``root`` must see the others' pids (one pid namespace).
    ``evicted_total`` and ``evicted_bytes_total`` count this instance's evictions.
    """

    def __init__(self, root: str | Path = DEFAULT_ROOT, max_bytes: int | None = None) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 or None, got {max_bytes}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.evicted_total = 0
        self.evicted_bytes_total = 0
        self._token = uuid.uuid4().hex[:8]  # two instances in one process keep separate pin files
        self._pins: Counter[str] = Counter()
        self._pins_lock = threading.Lock()

    def get(self, uri: str, checksum: str) -> LocalArtifact:
        """The artifact on local disk, fetched from ``uri`` (and verified against ``checksum``) if absent.
        A fetch is followed by a prune when the cache has a budget. Pin the checksum *before* this call to keep
        the entry on disk while it is used."""
        final = self.root / _name(checksum)
        cached = self._hit(final, checksum)
        if cached is not None:
            return LocalArtifact(final, cached, fetched=False)
        with (self.root / f".{final.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching the same artifact
            cached = self._hit(final, checksum)
            if cached is not None:
                return LocalArtifact(final, cached, fetched=False)
            staging = self.root / f".staging-{uuid.uuid4().hex}"
            try:
                manifest = ArtifactStore.fetch(uri, checksum, staging)
                (staging / MANIFEST).write_bytes(manifest.to_bytes())
                os.rename(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        self.prune(keep=checksum)
        return LocalArtifact(final, manifest, fetched=True)

    def pin(self, checksum: str) -> None:
        """Keep the entry from being pruned while this process uses it (a loaded, memory-mapped model).
        The pin file is written under the prune lock (shared), so a concurrent prune either sees it or has
        already evicted the entry, and the following `get` fetches it again."""
        name = _name(checksum)
        with self._pins_lock:
            self._pins[name] += 1
            if self._pins[name] > 1:
                return
            (self.root / PINS).mkdir(exist_ok=True)
            with self._prune_lock(fcntl.LOCK_SH):
                self._pin_file(name).touch()

    def unpin(self, checksum: str) -> None:
        """Undo one `pin`; the entry may be pruned once no live process pins it."""
        name = _name(checksum)
        with self._pins_lock:
            if self._pins[name] > 1:
                self._pins[name] -= 1
                return
            self._pins.pop(name, None)
            self._pin_file(name).unlink(missing_ok=True)

    def prune(self, keep: str | None = None) -> list[str]:
        """Evict least recently used entries until the cache fits ``max_bytes``, never ``keep`` (a checksum)
        nor an entry a live process pins; returns the evicted checksums. Stale pins of dead processes and
        leftover trash are removed on the way."""
        if self.max_bytes is None:
            return []
        with self._prune_lock(fcntl.LOCK_EX):  # one pruner at a time on the node
            pinned = self._live_pins()
            if keep is not None:
                pinned.add(_name(keep))
            entries = self._entries()
            victims = _victims(entries, pinned, self.max_bytes)
            for victim in victims:
                os.rename(self.root / victim.name, self.root / f"{TRASH_PREFIX}{uuid.uuid4().hex}")
        for trash in self.root.glob(f"{TRASH_PREFIX}*"):  # outside the lock: deleting is slow, renaming is not
            shutil.rmtree(trash, ignore_errors=True)
        freed = sum(v.size for v in victims)
        if sum(e.size for e in entries) - freed > self.max_bytes:
            logger.warning(
                "artifact cache %s stays over its %d-byte budget: the rest is pinned or just fetched",
                self.root,
                self.max_bytes,
            )
        self.evicted_total += len(victims)
        self.evicted_bytes_total += freed
        return ["sha256:" + v.name for v in victims]

    def _entries(self) -> list[_Entry]:
        entries = []
        for item in os.scandir(self.root):
            if item.is_dir(follow_symlinks=False) and _ENTRY.fullmatch(item.name):
                size = sum(f.stat().st_size for f in Path(item.path).rglob("*") if f.is_file())
                entries.append(_Entry(item.stat().st_mtime, item.name, size))
        return entries

    def _live_pins(self) -> set[str]:
        live = set()
        for pin in (self.root / PINS).glob("*"):
            name, pid, _ = pin.name.split(".")
            if _alive(int(pid)):
                live.add(name)
            else:
                pin.unlink(missing_ok=True)  # its process died without unpinning
        return live

    def _pin_file(self, name: str) -> Path:
        return self.root / PINS / f"{name}.{os.getpid()}.{self._token}"

    @contextmanager
    def _prune_lock(self, mode: int) -> Iterator[None]:
        with (self.root / PRUNE_LOCK).open("a") as lock:
            fcntl.flock(lock, mode)
            yield

    @staticmethod
    def _hit(final: Path, checksum: str) -> Manifest | None:
        try:
            os.utime(final)  # recency for pruning: one syscall per hit
            raw = (final / MANIFEST).read_bytes()
        except FileNotFoundError:  # absent, or evicted just now
            return None
        if "sha256:" + hashlib.sha256(raw).hexdigest() != checksum:
            raise CorruptArtifactError(f"local artifact {final} does not match {checksum}: delete the directory")
        return Manifest.from_bytes(raw)
