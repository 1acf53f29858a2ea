"""fp16 / int8 for deep models (issue 8): the size and accuracy change of each precision against fp32, and the
inference time, on every device present (CPU always; CUDA when there is one).

The model is an MLP (32 inputs, two hidden layers of 512) trained on a synthetic regression task, so its
weights are a trained model's, not random ones. Figures per device and precision: the serialized state dict's
size, the predictions' error against the same model in fp32 (max and mean absolute, and the change in test
RMSE), and the p50 time of a 32-row and a 1024-row forward pass; ratios are to fp32 on the same device, in the
same run. int8 (dynamic quantization) runs on CPU only.

Run alone: `python bench/deep_model_precision.py` (writes deep_model_precision.json, and
deep_model_precision_cuda.json with the CUDA rows when a GPU is present).
"""

from __future__ import annotations

import copy
import io
import time

import numpy as np
import torch
from _harness import Result, report

from ma_ray.serving import PRECISIONS, apply_precision, input_dtype
from ma_ray.training.trainers.torch_trainer import mlp

FEATURES = 32
HIDDEN = [512, 512]
TRAIN_ROWS, TEST_ROWS = 50_000, 20_000
STEPS = 400


def dataset(rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = np.sin(x[:, :8]).sum(axis=1) + 0.5 * (x[:, 8:16] ** 2).sum(axis=1) / 8 + x[:, 16:] @ np.linspace(-1, 1, 16)
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))


def trained_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = mlp(FEATURES, HIDDEN, 1)
    x, y = dataset(TRAIN_ROWS, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(STEPS):
        batch = slice((step * 256) % TRAIN_ROWS, (step * 256) % TRAIN_ROWS + 256)
        loss = torch.nn.functional.mse_loss(model(x[batch]).squeeze(-1), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def serialized_bytes(module: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return len(buffer.getvalue())


def predict(module: torch.nn.Module, x: torch.Tensor, precision: str, device: str) -> np.ndarray:
    with torch.inference_mode():
        out = module(x.to(device=device, dtype=input_dtype(precision)))
        return out.squeeze(-1).float().cpu().numpy()


def p50_us(module: torch.nn.Module, x: torch.Tensor, precision: str, device: str, repeats: int = 200) -> float:
    batch = x.to(device=device, dtype=input_dtype(precision))
    samples = []
    with torch.inference_mode():
        for i in range(repeats + 20):
            started = time.perf_counter_ns()
            module(batch).float().cpu()  # .cpu() waits for the device, as a response would
            if i >= 20:
                samples.append((time.perf_counter_ns() - started) / 1000)
    return float(np.median(samples))


def measure(model: torch.nn.Module, device: str) -> list[Result]:
    x, y = dataset(TEST_ROWS, 1)
    reference = copy.deepcopy(model).to(device)
    truth = predict(reference, x, "fp32", device)
    base = {
        "size": serialized_bytes(reference),
        "rmse": float(np.sqrt(np.mean((truth - y.numpy()) ** 2))),
        "p50_32": p50_us(reference, x[:32], "fp32", device),
        "p50_1024": p50_us(reference, x[:1024], "fp32", device),
    }
    results = [Result(f"{device} fp32 test RMSE", base["rmse"], "")]
    for precision in PRECISIONS[1:]:
        if precision == "int8" and device != "cpu":
            continue
        converted = apply_precision(copy.deepcopy(model).to(device), precision, device)
        predicted = predict(converted, x, precision, device)
        error = np.abs(predicted - truth)
        rmse = float(np.sqrt(np.mean((predicted - y.numpy()) ** 2)))
        tag = f"{device} {precision}"
        results += [
            Result(f"{tag} size", serialized_bytes(converted), "bytes", baseline=base["size"]),
            Result(f"{tag} max abs error vs fp32", float(error.max()), ""),
            Result(f"{tag} mean abs error vs fp32", float(error.mean()), ""),
            Result(f"{tag} test RMSE", rmse, "", baseline=base["rmse"]),
            Result(f"{tag} p50 32 rows", p50_us(converted, x[:32], precision, device), "us", baseline=base["p50_32"]),
            Result(
                f"{tag} p50 1024 rows", p50_us(converted, x[:1024], precision, device), "us", baseline=base["p50_1024"]
            ),
        ]
    return results


def main() -> None:
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    model = trained_model()
    notes = (
        "ratios are to fp32 on the same device in the same run; sizes are torch.save of the state dict; "
        f"MLP {FEATURES}->{HIDDEN}->1 trained {STEPS} Adam steps on a synthetic regression task"
    )
    report("deep_model_precision", measure(model, "cpu"), notes)
    if torch.cuda.is_available():
        notes += f"; GPU: {torch.cuda.get_device_name(0)}"
        report("deep_model_precision_cuda", measure(model, "cuda"), notes)


if __name__ == "__main__":
    main()
