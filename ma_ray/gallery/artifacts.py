"""Artifacts through ``pyarrow.fs``: written aside, published atomically, verified on every load.

An artifact is a directory of files plus a ``MANIFEST.json`` listing each file's size and sha256. Its
checksum is the sha256 of the manifest's canonical bytes, so one string pins every byte of every file.
Artifacts are content-addressed (``<root>/<model>/<checksum hex>``): publishing the same content twice
writes nothing, and a published artifact never changes. Publication stages every file under
``<root>/.staging/<uuid>``, moves the data files into place and the manifest last; readers treat an artifact
without a manifest as absent, so a half-published artifact is never seen, on a local disk or an object store.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from ma_ray.config import Settings
from ma_ray.gallery.errors import ChecksumMismatchError, CorruptArtifactError
from ma_ray.gallery.names import check_model_name
from ma_ray.storage import CHUNK_BYTES, FileEntry, copy_hashed, filesystem_and_path, hash_local_files

MANIFEST = "MANIFEST.json"


@dataclass(frozen=True)
class Manifest:
    flavor: str
    metadata: dict[str, Any]
    files: tuple[FileEntry, ...]

    def to_bytes(self) -> bytes:
        data = {
            "format": 1,
            "flavor": self.flavor,
            "metadata": self.metadata,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        files = tuple(FileEntry(f["path"], int(f["size"]), f["sha256"]) for f in data["files"])
        return cls(data["flavor"], data.get("metadata", {}), files)

    @property
    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class PublishedArtifact:
    uri: str
    checksum: str
    size_bytes: int
    manifest: Manifest


def _local_manifest(src: Path, flavor: str, metadata: dict[str, Any]) -> Manifest:
    files = hash_local_files(src)
    if any(entry.path == MANIFEST for entry in files):
        raise ValueError(f"{src / MANIFEST}: an artifact may not contain its own {MANIFEST}")
    if not files:
        raise ValueError(f"{src} holds no files: nothing to publish")
    return Manifest(flavor, metadata, tuple(files))


class ArtifactStore:
    """Publishes local directories under ``root_uri`` and fetches them back, verified."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactStore:
        return cls(settings.artifact_uri)

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")
        self._fs, self._root = filesystem_and_path(self.root_uri)
        self._fs.create_dir(self._root, recursive=True)

    def uri_for(self, model: str, checksum: str) -> str:
        return f"{self.root_uri}/{check_model_name(model)}/{checksum.removeprefix('sha256:')}"

    # ---- publish -------------------------------------------------------------------------------------------
    def publish(
        self, model: str, src: str | Path, flavor: str, metadata: dict[str, Any] | None = None
    ) -> PublishedArtifact:
        """Publish the files under the local directory ``src`` (or one file) as an artifact of ``model``."""
        src = Path(src)
        if src.is_file():
            staging_local = src.parent / f".{src.name}.{uuid.uuid4().hex}"
            staging_local.mkdir()
            try:
                shutil.copy2(src, staging_local / src.name)
                return self.publish(model, staging_local, flavor, metadata)
            finally:
                shutil.rmtree(staging_local, ignore_errors=True)
        manifest = _local_manifest(src, flavor, metadata or {})
        uri = self.uri_for(model, manifest.checksum)
        fs, final = filesystem_and_path(uri)
        if fs.get_file_info(f"{final}/{MANIFEST}").type == pafs.FileType.File:
            return PublishedArtifact(uri, manifest.checksum, manifest.size_bytes, manifest)  # same content: done
        staging = f"{self._root}/.staging/{uuid.uuid4().hex}"
        try:
            for entry in manifest.files:
                self._upload(src / entry.path, f"{staging}/{entry.path}")
            with self._fs.open_output_stream(f"{staging}/{MANIFEST}") as out:
                out.write(manifest.to_bytes())
            for entry in manifest.files:
                self._move(f"{staging}/{entry.path}", f"{final}/{entry.path}")
            self._move(f"{staging}/{MANIFEST}", f"{final}/{MANIFEST}")  # the moment it becomes visible
        finally:
            if self._fs.get_file_info(staging).type == pafs.FileType.Directory:
                self._fs.delete_dir(staging)
        return PublishedArtifact(uri, manifest.checksum, manifest.size_bytes, manifest)

    def _upload(self, local: Path, target: str) -> None:
        self._fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with local.open("rb") as handle, self._fs.open_output_stream(target) as out:
            shutil.copyfileobj(handle, out, CHUNK_BYTES)  # hashed already, by the manifest

    def _move(self, source: str, target: str) -> None:
        self._fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        self._fs.move(source, target)

    # ---- verify and fetch ------------------------------------------------------------------------------------
    @staticmethod
    def read_manifest(uri: str, checksum: str) -> Manifest:
        """The artifact's manifest, checked against ``checksum``. Raises ChecksumMismatchError if it differs,
        CorruptArtifactError if it is missing or unreadable."""
        fs, base = filesystem_and_path(uri)
        try:
            with fs.open_input_stream(f"{base}/{MANIFEST}") as handle:
                raw = handle.read()
            manifest = Manifest.from_bytes(raw)
        except (OSError, ValueError, KeyError) as error:
            raise CorruptArtifactError(f"artifact {uri} has no readable {MANIFEST}: {error}") from None
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if actual != checksum:
            raise ChecksumMismatchError(
                f"artifact {uri} has checksum {actual}, not {checksum}: register it with the checksum that "
                "`ArtifactStore.publish` returned"
            )
        return manifest

    @staticmethod
    def verify(uri: str, checksum: str) -> Manifest:
        """Read every byte of the artifact and check it against its manifest and ``checksum``."""
        manifest = ArtifactStore.read_manifest(uri, checksum)
        fs, base = filesystem_and_path(uri)
        for entry in manifest.files:
            with fs.open_input_stream(f"{base}/{entry.path}") as handle:
                _copy_checked(uri, entry, handle, None)
        return manifest

    @staticmethod
    def fetch(uri: str, checksum: str, dest: str | Path) -> Manifest:
        """Download the artifact into the local directory ``dest``, verifying every file; on any mismatch
        ``dest`` is emptied and CorruptArtifactError raised, so nothing unverified is ever loaded."""
        dest = Path(dest)
        manifest = ArtifactStore.read_manifest(uri, checksum)
        fs, base = filesystem_and_path(uri)
        try:
            for entry in manifest.files:
                target = dest / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(f"{base}/{entry.path}") as handle, target.open("wb") as out:
                    _copy_checked(uri, entry, handle, out)
        except (CorruptArtifactError, OSError) as error:
            shutil.rmtree(dest, ignore_errors=True)
            if isinstance(error, CorruptArtifactError):
                raise
            raise CorruptArtifactError(f"artifact {uri} could not be read: {error}") from None
        return manifest


def _copy_checked(uri: str, entry: FileEntry, handle: Any, out: Any) -> None:
    digest = copy_hashed(handle, out)
    if not entry.matches(digest):
        raise CorruptArtifactError(
            f"artifact {uri} is corrupted: {entry.path} has {digest.size} bytes and sha256 {digest.sha256[:12]}..., "
            f"its manifest says {entry.size} bytes and {entry.sha256[:12]}...; it will not be loaded"
        )
