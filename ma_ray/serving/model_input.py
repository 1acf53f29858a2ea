"""A model's input row: its signature's features in order, then its DSL transforms (compiled once, scalar),
as floats (booleans 0/1, timestamps epoch seconds, nulls NaN), from resolved values and request fields."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ma_ray.palette import BASIS_PREFIX, FeatureType
from ma_ray.palette.dsl import compile_expression
from ma_ray.row_dicts import row_to_dict


class ModelInputs:
    def __init__(self, features: Sequence[str], transforms: Mapping[str, str], types: Mapping[str, FeatureType]):
        unknown = [ref for ref in features if ref not in types]
        if unknown:
            raise ValueError(f"the model reads feature(s) the catalog lacks: {', '.join(unknown)}")
        self.features = list(features)
        self.transforms = {name: compile_expression(source, types) for name, source in transforms.items()}
        self.columns = [*self.features, *self.transforms]
        kinds = {**{ref: types[ref] for ref in self.features}, **{n: c.output_type for n, c in self.transforms.items()}}
        text = [name for name, kind in kinds.items() if kind is FeatureType.STRING]
        if text:
            raise ValueError(
                f"model inputs must be numbers, booleans or timestamps; encode {', '.join(text)} with a "
                "DSL transform (e.g. `x in [...]`, `len(x)`)"
            )

        needed = dict.fromkeys(self.features)
        for compiled in self.transforms.values():
            needed.update(dict.fromkeys(sorted(compiled.references)))
        self._needed = tuple(needed)  # once: every request asks
        self._row_of = row_to_dict(self._needed, 0)

    def needed_refs(self) -> list[str]:
        """Everything to resolve for a request: the features and what the transforms read."""
        return list(self._needed)

    def request_fields(self) -> list[str]:
        return [ref[len(BASIS_PREFIX) :] for ref in self.needed_refs() if ref.startswith(BASIS_PREFIX)]

    def matrix(self, columns: Mapping[str, Sequence[Any]], row_count: int) -> np.ndarray:
        """One row per request row from resolved columns (``needed_refs`` each), converted in one numpy call (the
        per-value path only for timestamps); only the transforms read row by row."""
        features = (columns[ref] for ref in self.features)
        rows: list[Any] = list(zip(*features, strict=True)) if self.features else [()] * row_count
        if self.transforms:
            envs = (
                list(map(self._row_of, zip(*(columns[ref] for ref in self._needed), strict=True)))
                if self._needed
                else [{}] * row_count
            )
            transforms = list(self.transforms.values())
            rows = [[*values, *(t.scalar(env) for t in transforms)] for values, env in zip(rows, envs, strict=True)]
        try:  # numbers, booleans and nulls (NaN) convert in one call; timestamps need the per-value path
            matrix = np.array(rows, dtype=np.float64)
        except TypeError:
            matrix = np.array([[_as_float(value) for value in row] for row in rows], dtype=np.float64)
        return matrix.reshape(row_count, len(self.columns))

    def vector(self, values: Mapping[str, Any]) -> list[float]:
        """One row's inputs from its values by ref (a missing ref is null)."""
        row: list[float] = self.matrix({ref: [values.get(ref)] for ref in self.needed_refs()}, 1)[0].tolist()
        return row


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)
