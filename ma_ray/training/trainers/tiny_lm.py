"""A tiny causal language model built from a config (no hub download), a character tokenizer and a small
deterministic corpus of rideshare sentences: what the DeepSpeed trainer fine-tunes in tests and demos.
Importing this module imports torch."""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from typing import Any

import torch

PAD = 0
VOCAB = "\0" + string.ascii_lowercase + string.digits + " .,:-'"
"""Index 0 is padding; characters outside the vocabulary are dropped."""


@dataclass(frozen=True)
class TinyLMConfig:
    vocab_size: int = len(VOCAB)
    d_model: int = 32
    n_heads: int = 2
    n_layers: int = 2
    max_len: int = 64
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode(text: str) -> list[int]:
    """Character ids of ``text`` (lower-cased; unknown characters dropped)."""
    index = {c: i for i, c in enumerate(VOCAB)}
    return [index[c] for c in text.lower() if c in index and c != "\0"]


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids if 0 < i < len(VOCAB))


def tiny_corpus(lines: int, seed: int = 0) -> list[dict[str, str]]:
    """``lines`` rows ``{"text": ...}`` of templated trip sentences, the same for the same seed."""
    rng = random.Random(seed)
    places = ["airport", "downtown", "station", "stadium", "harbor", "campus", "mall"]
    verbs = ["picked up", "dropped off", "waited for", "drove"]
    rows = []
    for _ in range(lines):
        hour, minute = rng.randrange(24), rng.randrange(0, 60, 5)
        driver, rider = rng.randrange(100), rng.randrange(1000)
        place = rng.choice(places)
        rows.append({"text": f"driver {driver} {rng.choice(verbs)} rider {rider} at {place}, {hour:02d}:{minute:02d}."})
    return rows


def build_tiny_lm(**config: Any) -> TinyCausalLM:
    """The model factory (``ma_ray.training.trainers.tiny_lm:build_tiny_lm``): a `TinyCausalLM` from config keys."""
    return TinyCausalLM(TinyLMConfig(**config))


class TinyCausalLM(torch.nn.Module):
    """Token and position embeddings, pre-norm transformer blocks with a causal mask, a tied output head."""

    def __init__(self, config: TinyLMConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = torch.nn.Embedding(config.vocab_size, config.d_model, padding_idx=PAD)
        self.positions = torch.nn.Embedding(config.max_len, config.d_model)
        layer = torch.nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, 4 * config.d_model, config.dropout, batch_first=True, norm_first=True
        )
        self.blocks = torch.nn.TransformerEncoder(layer, config.n_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(config.d_model)
        # Small embeddings (GPT-2's 0.02): with the tied head, initial logits start near uniform.
        for embedding in (self.tokens, self.positions):
            torch.nn.init.normal_(embedding.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, time, vocab]`` for token ids ``[batch, time]``; position t sees tokens up to t."""
        length = ids.shape[1]
        hidden = self.tokens(ids) + self.positions(torch.arange(length, device=ids.device))
        mask = torch.nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        hidden = self.norm(self.blocks(hidden, mask=mask, is_causal=True))
        logits: torch.Tensor = hidden @ self.tokens.weight.T
        return logits


def token_batch(texts: list[str], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-character targets ``[batch, seq_len]``, padded with `PAD` (targets ignore padding)."""
    ids = torch.full((len(texts), seq_len + 1), PAD, dtype=torch.int64)
    for row, text in enumerate(texts):
        encoded = encode(text)[: seq_len + 1]
        ids[row, : len(encoded)] = torch.tensor(encoded, dtype=torch.int64)
    return ids[:, :-1], ids[:, 1:]
