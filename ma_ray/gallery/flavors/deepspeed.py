"""DeepSpeed checkpoints: the checkpoint directory as written by ``engine.save_checkpoint(dir)`` (one folder
per tag, a ``latest`` file naming the newest), stored file by file with the artifact manifest, with the factory
of the module its weights fill when given (serving needs it: `ma_ray.serving.frameworks`). Loading gives the
verified local directory and tag, for ``engine.load_checkpoint(path, tag)``; DeepSpeed itself is not needed to
store or verify one."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ma_ray.gallery.flavors.factory import factory_metadata
from ma_ray.gallery.models import Framework


@dataclass(frozen=True)
class DeepSpeedCheckpoint:
    path: Path
    tag: str | None

    @property
    def tag_dir(self) -> Path:
        return self.path / self.tag if self.tag else self.path


class DeepSpeedFlavor:
    framework = Framework.DEEPSPEED
    in_memory = False

    def save(self, model: Any, dest: Path, **options: Any) -> dict[str, Any]:
        """``model`` is the checkpoint directory (a path). Option ``tag`` overrides its ``latest`` file;
        ``factory`` and ``factory_kwargs`` name the callable that builds the module its weights fill (what
        serving needs, as for the pytorch flavor)."""
        src = Path(model)
        if not src.is_dir():
            raise TypeError(f"the deepspeed flavor stores a checkpoint directory, {src} is not one")
        tag = options.get("tag")
        if tag is None and (src / "latest").is_file():
            tag = (src / "latest").read_text().strip()
        if tag is not None and not (src / tag).is_dir():
            raise ValueError(f"checkpoint {src} has no folder for tag '{tag}'")
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return {"tag": tag, **factory_metadata(options)}

    def load(self, src: Path, metadata: dict[str, Any]) -> DeepSpeedCheckpoint:
        return DeepSpeedCheckpoint(src, metadata.get("tag"))
