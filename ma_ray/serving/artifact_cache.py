"""Model artifacts on a serving node's local disk: fetched (and verified) once per node, then loaded from there
by every replica on the node, in the framework's native format (the seed's "CDN caching, pre-warming" and
"memory-mapped model files").

Entries are content-addressed by the artifact's checksum, so an entry never goes stale: the same checksum is the
same bytes. A fetch goes to a staging directory and is renamed into place with its manifest, under a file lock
that serializes replicas (processes) fetching the same artifact; a reader never sees a half-written entry.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ma_ray.gallery.artifacts import MANIFEST, ArtifactStore, Manifest
from ma_ray.gallery.errors import CorruptArtifactError
from ma_ray.gallery.flavors import flavor as flavor_for
from ma_ray.gallery.flavors.factory import resolve_factory

DEFAULT_ROOT = Path(tempfile.gettempdir()) / "ma_ray_artifact_cache"


@dataclass(frozen=True)
class LocalArtifact:
    path: Path
    manifest: Manifest
    fetched: bool  # False: it was on this node's disk already


class LocalArtifactCache:
    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, uri: str, checksum: str) -> LocalArtifact:
        """The artifact on local disk, fetched from ``uri`` (and verified against ``checksum``) if absent."""
        final = self.root / checksum.removeprefix("sha256:")
        cached = self._cached(final, checksum)
        if cached is not None:
            return LocalArtifact(final, cached, fetched=False)
        with (self.root / f".{final.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be fetching the same artifact
            cached = self._cached(final, checksum)
            if cached is not None:
                return LocalArtifact(final, cached, fetched=False)
            staging = self.root / f".staging-{uuid.uuid4().hex}"
            try:
                manifest = ArtifactStore.fetch(uri, checksum, staging)
                (staging / MANIFEST).write_bytes(manifest.to_bytes())
                os.rename(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return LocalArtifact(final, manifest, fetched=True)

    @staticmethod
    def _cached(final: Path, checksum: str) -> Manifest | None:
        try:
            raw = (final / MANIFEST).read_bytes()
        except FileNotFoundError:
            return None
        if "sha256:" + hashlib.sha256(raw).hexdigest() != checksum:
            raise CorruptArtifactError(f"local artifact {final} does not match {checksum}: delete the directory")
        return Manifest.from_bytes(raw)


def load_local(artifact: LocalArtifact, device: str = "cpu") -> Any:
    """The model object from a local artifact: XGBoost from its native UBJ file; PyTorch's state dict
    memory-mapped (``torch.load(mmap=True)``: pages come from the page cache, shared by the node's replicas)
    into the module its factory builds; any other flavor through its own loader."""
    flavor = artifact.manifest.flavor
    if flavor != "pytorch":
        return flavor_for(flavor).load(artifact.path, artifact.manifest.metadata)
    import torch

    from ma_ray.gallery.flavors.pytorch import FILE

    metadata = artifact.manifest.metadata
    module = resolve_factory(metadata["factory"])(**metadata.get("factory_kwargs", {}))
    state = torch.load(artifact.path / FILE, map_location="cpu", weights_only=True, mmap=True)
    module.load_state_dict(state)
    return module.to(device).eval()
