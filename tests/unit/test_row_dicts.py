"""`row_to_dict` compiles a dict display per row shape: it must give what ``dict(zip(names, row[offset:]))`` gives
for any names (they enter the source as literals, never as code)."""

from __future__ import annotations

import pytest

from ma_ray.row_dicts import row_to_dict


@pytest.mark.parametrize(
    "names",
    [
        ("trips", "rating"),
        ("it's", 'say "hi"', "back\\slash", "new\nline", "ünïcödé", "{}", "x}: 1, 'y"),
        ("__import__('os').system('false')",),
        tuple(f"f{i}" for i in range(300)),
        (),
    ],
)
@pytest.mark.parametrize("offset", [0, 2])
def test_the_dict_is_the_names_zipped_with_the_row_from_offset(names: tuple[str, ...], offset: int) -> None:
    row = ("key", 123, *range(len(names)))[2 - offset :]
    assert row_to_dict(names, offset)(row) == dict(zip(names, row[offset:], strict=True))


def test_each_call_gives_a_new_dict_and_a_shape_compiles_once() -> None:
    make = row_to_dict(("a", "b"), 0)
    first, second = make((1, 2)), make((1, 2))
    assert first == second and first is not second
    assert row_to_dict(("a", "b"), 0) is make


def test_a_short_row_raises_and_a_negative_offset_is_refused() -> None:
    with pytest.raises(IndexError):
        row_to_dict(("a", "b"), 2)(("k", 1, 0.5))
    with pytest.raises(ValueError, match="offset must be >= 0"):
        row_to_dict(("a",), -1)
