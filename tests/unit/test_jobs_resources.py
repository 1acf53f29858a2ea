import pytest
from hypothesis import given
from hypothesis import strategies as st

from ma_ray.jobs.resources import Resources

amounts = st.floats(0, 1000, allow_nan=False)
vectors = st.builds(Resources, amounts, amounts, amounts)


def test_arithmetic_and_fit() -> None:
    a, b = Resources(4, 1, 16), Resources(1, 1, 8)
    assert a - b == Resources(3, 0, 8) and a + b == Resources(5, 2, 24) and b * 2 == Resources(2, 2, 16)
    assert b.fits_in(a) and not a.fits_in(b)
    assert Resources(2, 0, 1).count_in(Resources(9, 0, 100)) == 4
    assert Resources(1, 1, 0).share_of(Resources(10, 4, 64)) == 0.25
    assert Resources(1, 0, 0).saturating_sub(Resources(3, 1, 0)) == Resources()


def test_over_commit_and_negative_amounts_raise() -> None:
    with pytest.raises(ValueError, match="cannot take"):
        Resources(1, 0, 0) - Resources(0, 1, 0)
    with pytest.raises(ValueError, match="negative"):
        Resources(-1, 0, 0)
    with pytest.raises(ValueError, match="zero vector"):
        Resources().count_in(Resources(1, 1, 1))


@given(vectors, vectors)
def test_adding_then_taking_back_round_trips(a: Resources, b: Resources) -> None:
    back = (a + b) - b
    assert back.fits_in(a + Resources(1e-6, 1e-6, 1e-6)) and a.fits_in(back + Resources(1e-6, 1e-6, 1e-6))
