"""PyTorch models as a ``state_dict`` (loaded with ``weights_only=True``: tensors, no pickled code) plus the
reference of a factory that builds the empty module, with its keyword arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ma_ray.gallery.flavors.factory import factory_metadata, resolve_factory
from ma_ray.gallery.models import Framework

FILE = "state_dict.pt"


class PyTorchFlavor:
    framework = Framework.PYTORCH
    in_memory = True

    def save(self, model: Any, dest: Path, **options: Any) -> dict[str, Any]:
        """Options: ``factory`` (a module-level callable or its "module:callable" reference) and
        ``factory_kwargs`` (JSON-able keyword arguments it takes)."""
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"the pytorch flavor saves a torch.nn.Module, not {type(model).__name__}")
        if options.get("factory") is None:
            raise ValueError("the pytorch flavor needs factory= (the callable that builds an empty module)")
        factory = factory_metadata(options)
        dest.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), dest / FILE)
        return {**factory, "torch_version": torch.__version__}

    def load(self, src: Path, metadata: dict[str, Any]) -> Any:
        import torch

        module = resolve_factory(metadata["factory"])(**metadata.get("factory_kwargs", {}))
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"model factory {metadata['factory']} built a {type(module).__name__}, not a Module")
        module.load_state_dict(torch.load(src / FILE, map_location="cpu", weights_only=True))
        module.eval()
        return module
