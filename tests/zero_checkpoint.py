"""A DeepSpeed ZeRO-2 checkpoint folder as rank 0 of a run writes it, for the tiny causal LM, without running
DeepSpeed: only the module weights file is what serving reads; the optimizer partition is a placeholder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

LM_FACTORY = "ma_ray.training.trainers.tiny_lm:build_tiny_lm"
LM_CONFIG = {"d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 4}  # small: it shares a tiny cache budget


def zero_checkpoint(folder: Path, module: torch.nn.Module, tag: str = "step3") -> Path:
    (folder / tag).mkdir(parents=True)
    (folder / "latest").write_text(tag)
    torch.save({"module": module.state_dict(), "ds_version": "0.x", "global_steps": 3},
               folder / tag / "mp_rank_00_model_states.pt")  # fmt: skip
    (folder / tag / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"partitioned optimizer state")
    (folder / "model_config.json").write_text(json.dumps(LM_CONFIG))
    return folder
