"""Checkpoints of a run on any ``pyarrow.fs`` filesystem, laid out as ``<checkpoint_uri>/<run_id>/<checkpoint_id>/``.

A checkpoint's files are written first and its ``manifest.json`` (sha256 and size per file, step, epoch) last,
so a checkpoint without a readable manifest was never finished. Choosing one to resume from goes through
`checkpoint_policy.latest_valid`: every listed file is re-hashed from storage, and a corrupt or incomplete newest
checkpoint falls back to the one before. Several writers (one per rank) may add files to one checkpoint with
`write_files`; one of them then `commit`s the manifest listing them all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from ma_ray.config import Settings
from ma_ray.storage import FileDigest, FileEntry, copy_hashed, filesystem_and_path
from ma_ray.training.checkpoint_policy import CheckpointManifest, CheckpointPolicy, Selection, latest_valid

MANIFEST = "manifest.json"


def checkpoint_root(settings: Settings) -> str:
    """Where runs keep their checkpoints (``<root>/<run_id>/...``): next to the artifacts, on shared storage."""
    return f"{settings.artifact_uri.rstrip('/')}/_checkpoints"


def checkpoint_id_for(step: int) -> str:
    """A checkpoint id that sorts by step and stays unique when the same step is saved twice."""
    return f"step-{step:010d}-{time.time_ns():x}"


@dataclass(frozen=True)
class StoreSelection:
    """What `CheckpointStore.latest_valid` chose, and every newer checkpoint it rejected with its reasons."""

    chosen: CheckpointManifest | None
    rejected: dict[str, list[str]] = field(default_factory=dict)


class CheckpointStore:
    """The checkpoints of one run. ``policy.keep_last`` bounds how many `prune` leaves."""

    def __init__(self, checkpoint_uri: str, run_id: str, policy: CheckpointPolicy | None = None) -> None:
        if not run_id or "/" in run_id:
            raise ValueError(f"run id {run_id!r} must be a non-empty name without '/'")
        self.fs, base = filesystem_and_path(checkpoint_uri)
        self.root = f"{base}/{run_id}"
        self._scheme = checkpoint_uri.split("://", 1)[0] + "://" if "://" in checkpoint_uri else ""
        self.policy = policy or CheckpointPolicy()

    def path(self, checkpoint_id: str) -> str:
        """The checkpoint's folder on the store's filesystem."""
        return f"{self.root}/{checkpoint_id}"

    def uri(self, checkpoint_id: str) -> str:
        """The checkpoint's folder as a URI of the same scheme as ``checkpoint_uri`` (a path for local ones)."""
        return f"{self._scheme}{self.path(checkpoint_id)}"

    def write_files(self, checkpoint_id: str, local_dir: Path) -> list[FileEntry]:
        """Upload every file under ``local_dir`` into the checkpoint, hashing as it goes; no manifest yet."""
        entries = []
        for source in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            relative = source.relative_to(local_dir).as_posix()
            target = f"{self.path(checkpoint_id)}/{relative}"
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with source.open("rb") as src, self.fs.open_output_stream(target) as dst:
                digest = copy_hashed(src, dst)
            entries.append(FileEntry(relative, digest.size, digest.sha256))
        return entries

    def commit(self, checkpoint_id: str, step: int, epoch: int, files: list[FileEntry]) -> CheckpointManifest:
        """Write the manifest, last: from now on the checkpoint is listed."""
        if not files:
            raise ValueError(f"checkpoint {checkpoint_id} has no files to commit")
        entries = tuple(sorted(files, key=lambda f: f.path))
        manifest = CheckpointManifest(checkpoint_id, step, epoch, time.time(), entries)
        with self.fs.open_output_stream(f"{self.path(checkpoint_id)}/{MANIFEST}") as out:
            out.write(json.dumps(manifest.to_dict(), indent=1).encode())
        return manifest

    def save(self, local_dir: Path, step: int, epoch: int) -> CheckpointManifest:
        """Store ``local_dir`` as a new checkpoint (files, then manifest) and return its manifest."""
        checkpoint_id = checkpoint_id_for(step)
        return self.commit(checkpoint_id, step, epoch, self.write_files(checkpoint_id, local_dir))

    def manifests(self) -> tuple[list[CheckpointManifest], dict[str, list[str]]]:
        """Committed checkpoints, and the folders whose manifest exists but cannot be read (with the reason).
        Folders without a manifest (unfinished saves, other tools' files) are not checkpoints."""
        selector = pafs.FileSelector(self.root, allow_not_found=True)
        folders = [info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.Directory]
        found: list[CheckpointManifest] = []
        unreadable: dict[str, list[str]] = {}
        for name in sorted(folders):
            path = f"{self.path(name)}/{MANIFEST}"
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                continue
            try:
                with self.fs.open_input_stream(path) as stream:
                    manifest = CheckpointManifest.from_dict(json.loads(stream.read()))
            except (ValueError, OSError) as exc:
                unreadable[name] = [f"{MANIFEST}: {exc}"]
                continue
            if manifest.checkpoint_id != name:
                unreadable[name] = [f"{MANIFEST} names checkpoint {manifest.checkpoint_id!r}, not its folder"]
                continue
            found.append(manifest)
        return found, unreadable

    def facts(self, checkpoint_id: str, path: str) -> FileDigest | None:
        """Size and sha256 of a stored file, read back from storage (None when missing)."""
        target = f"{self.path(checkpoint_id)}/{path}"
        if self.fs.get_file_info(target).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(target) as stream:
            return copy_hashed(stream)

    def latest_valid(self) -> StoreSelection:
        """The newest checkpoint whose files all match its manifest (None: start from scratch)."""
        manifests, unreadable = self.manifests()
        selection: Selection = latest_valid(manifests, self.facts)
        return StoreSelection(selection.chosen, {**unreadable, **selection.rejected})

    def restore(self, manifest: CheckpointManifest, dest: Path) -> Path:
        """Download the checkpoint's files into ``dest``, checking each against the manifest as it arrives."""
        for entry in manifest.files:
            target = Path(dest) / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            source = f"{self.path(manifest.checkpoint_id)}/{entry.path}"
            with self.fs.open_input_stream(source) as src, target.open("wb") as dst:
                digest = copy_hashed(src, dst)
            if digest.sha256 != entry.sha256:
                raise ValueError(f"checkpoint {manifest.checkpoint_id}: {entry.path} changed while restoring")
        return Path(dest)

    def prune(self) -> list[str]:
        """Delete committed checkpoints beyond the newest ``keep_last``; returns the deleted ids."""
        manifests, _ = self.manifests()
        doomed = self.policy.to_delete(manifests)
        for manifest in doomed:
            # The manifest goes first, so a half-deleted checkpoint is never listed.
            self.fs.delete_file(f"{self.path(manifest.checkpoint_id)}/{MANIFEST}")
            self.fs.delete_dir(self.path(manifest.checkpoint_id))
        return [m.checkpoint_id for m in doomed]
