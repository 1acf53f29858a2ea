"""Reduced precision for deep models: fp16 and int8 stay close to fp32, shrink the model, and a precision the
hardware cannot run is refused at configuration time with the fix in the message."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from pydantic import ValidationError

from apps.prediction import ServingOptions
from ma_ray.serving.precision import apply_precision, check_precision, input_dtype
from ma_ray.training.trainers.torch_trainer import mlp

pytestmark = pytest.mark.unit


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mlp(8, [256, 256], 1).eval()  # big enough that the weights, not the pickle framing, set the size


def _size(module: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return len(buffer.getvalue())


@pytest.mark.parametrize(("precision", "tolerance", "shrinks_to"), [("fp16", 1e-2, 0.55), ("int8", 5e-2, 0.45)])
def test_converted_model_is_close_to_fp32_and_smaller(precision: str, tolerance: float, shrinks_to: float) -> None:
    model = _model()
    x = torch.randn(256, 8)
    with torch.inference_mode():
        reference = model(x).squeeze(-1)
        converted = apply_precision(copy.deepcopy(model), precision, "cpu")
        output = converted(x.to(input_dtype(precision))).squeeze(-1).float()
    assert output.dtype == torch.float32 and output.shape == reference.shape
    assert torch.max(torch.abs(output - reference)) < tolerance * max(1.0, float(reference.abs().max()))
    assert _size(converted) < shrinks_to * _size(model)


def test_fp32_leaves_the_module_as_it_is() -> None:
    model = _model()
    assert apply_precision(model, "fp32", "cpu") is model
    assert input_dtype("fp32") == torch.float32 and input_dtype("fp16") == torch.float16


def test_int8_on_a_gpu_and_unknown_precisions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"int8 .* CPU only: use fp16"):
        check_precision("int8", "cuda")
    with pytest.raises(ValueError, match="unknown precision 'bf8': use one of fp32, fp16, int8"):
        check_precision("bf8", "cpu")


def test_serving_options_check_precision_against_the_pool_hardware() -> None:
    assert ServingOptions(deep_precision="int8").deep_precision == "int8"
    assert ServingOptions(deep_precision="fp16", gpus_per_replica=1).deep_precision == "fp16"
    with pytest.raises(ValidationError, match=r"int8 .* CPU only"):
        ServingOptions(deep_precision="int8", gpus_per_replica=1)
    with pytest.raises(ValidationError, match="deep_precision"):
        ServingOptions(deep_precision="fp8")
