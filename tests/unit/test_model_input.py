import math
from datetime import UTC, datetime

import pytest

from ma_ray.palette.types import FeatureType
from ma_ray.serving.model_input import ModelInputs

TYPES = {"@a": FeatureType.INT, "@b": FeatureType.BOOL, "@basis:ts": FeatureType.TIMESTAMP, "@s": FeatureType.STRING}
TYPES = {f"@palette:c:g:{k[1:]}:id" if not k.startswith("@basis") else k: v for k, v in TYPES.items()}
A, B, S = "@palette:c:g:a:id", "@palette:c:g:b:id", "@palette:c:g:s:id"


def test_vector_in_signature_order_then_transforms() -> None:
    inputs = ModelInputs([A, B], {"doubled": f"{A} * 2", "hour": "hour(@basis:ts)"}, TYPES)
    assert inputs.columns == [A, B, "doubled", "hour"]
    assert inputs.needed_refs() == [A, B, "@basis:ts"]
    assert inputs.request_fields() == ["ts"]
    moment = datetime(2026, 1, 1, 7, tzinfo=UTC)
    assert inputs.vector({A: 3, B: True, "@basis:ts": moment}) == [3.0, 1.0, 6.0, 7.0]
    vector = inputs.vector({A: None, B: None, "@basis:ts": None})
    assert all(math.isnan(v) for v in vector)


def test_matrix_rows_hold_the_vectors_values_timestamps_and_nulls_included() -> None:
    inputs = ModelInputs([A, B, "@basis:ts"], {"doubled": f"{A} * 2"}, TYPES)
    moments = [datetime(2026, 1, 1, 7, tzinfo=UTC), None]
    columns = {A: [3, None], B: [False, True], "@basis:ts": moments}
    matrix = inputs.matrix(columns, 2)
    assert matrix.shape == (2, 4)
    assert matrix[0].tolist() == [3.0, 0.0, moments[0].timestamp(), 6.0]
    assert math.isnan(matrix[1, 0]) and matrix[1, 1] == 1.0 and math.isnan(matrix[1, 2]) and math.isnan(matrix[1, 3])
    for i in range(2):
        row = {ref: column[i] for ref, column in columns.items()}
        assert matrix[i].tolist() == pytest.approx(inputs.vector(row), nan_ok=True)
    assert inputs.matrix({A: [], B: [], "@basis:ts": []}, 0).shape == (0, 4)
    assert inputs.matrix({A: [1, 2], B: [True, None], "@basis:ts": [None, None]}, 2)[:, :2].tolist()[0] == [1.0, 1.0]


def test_unknown_or_text_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="the catalog lacks: @palette:c:g:zz:id"):
        ModelInputs(["@palette:c:g:zz:id"], {}, TYPES)
    with pytest.raises(ValueError, match="encode @palette:c:g:s:id with a DSL transform"):
        ModelInputs([S], {}, TYPES)
    assert ModelInputs([], {"is_x": f'{S} == "x"'}, TYPES).vector({S: "x"}) == [1.0]
