"""Reduced precision for deep models at load time (the seed's optional fp16/int8 for deep models).

``fp16`` halves a PyTorch module's weights and runs it in half precision (fast on a GPU, supported on CPU);
``int8`` is dynamic quantization of the ``nn.Linear`` layers (int8 weights, activations quantized per batch),
which PyTorch runs on CPU only. ``bench/deep_model_precision.py`` reports the size and accuracy change.
"""

from __future__ import annotations

from typing import Any, Literal

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
# How much of the fp32 size a converted model keeps in memory (int8: Linear weights; biases and scales stay fp32).
SIZE_FACTOR = {"fp32": 1.0, "fp16": 0.5, "int8": 0.27}


def check_precision(precision: str, device: str) -> None:
    """Raises ``ValueError`` naming the fix for a precision this device cannot run."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device != "cpu":
        raise ValueError("int8 (dynamic quantization) runs on CPU only: use fp16 on a GPU, or gpus_per_replica 0")


def apply_precision(module: Any, precision: str, device: str) -> Any:
    """``module`` (fp32, already on ``device``, in eval mode) converted to ``precision``."""
    check_precision(precision, device)
    if precision == "fp16":
        return module.half()
    if precision == "int8":
        import torch
        from torch.ao.quantization import quantize_dynamic

        # torch leaves quantize_dynamic unannotated
        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    return module


def input_dtype(precision: str) -> Any:
    """The dtype a converted module takes its inputs in."""
    import torch

    return torch.float16 if precision == "fp16" else torch.float32
