"""CPU / GPU / memory vectors: the unit the scheduler adds, subtracts and packs, always all three together."""

from __future__ import annotations

from dataclasses import dataclass

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Resources:
    """A non-negative CPU / GPU / memory vector (memory in GiB).

    Arithmetic is exact up to a tolerance of 1e-9, so repeated allocate/release cycles of fractional CPUs do not
    drift into "does not fit". Subtracting more than is there raises ``ValueError`` (an over-commit is a bug).
    """

    cpu: float = 0.0
    gpu: float = 0.0
    memory_gb: float = 0.0

    def __post_init__(self) -> None:
        if min(self.cpu, self.gpu, self.memory_gb) < 0:
            raise ValueError(f"resources cannot be negative: {self}")

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.cpu, self.gpu, self.memory_gb)

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.gpu + other.gpu, self.memory_gb + other.memory_gb)

    def __sub__(self, other: Resources) -> Resources:
        values = [a - b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)]
        if min(values) < -_EPS:
            raise ValueError(f"cannot take {other} from {self}")
        return Resources(*(max(v, 0.0) for v in values))

    def __mul__(self, factor: float) -> Resources:
        return Resources(self.cpu * factor, self.gpu * factor, self.memory_gb * factor)

    def saturating_sub(self, other: Resources) -> Resources:
        """``self - other`` with every component floored at zero (never raises)."""
        return Resources(*(max(a - b, 0.0) for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def fits_in(self, other: Resources) -> bool:
        """True when every component is at most the matching component of ``other``."""
        return all(a <= b + _EPS for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))

    def is_zero(self) -> bool:
        return all(v <= _EPS for v in self.as_tuple())

    def share_of(self, total: Resources) -> float:
        """Dominant share: the largest fraction of ``total`` this vector takes in any dimension (inf if none)."""
        shares = [
            (a / b if b > 0 else float("inf")) for a, b in zip(self.as_tuple(), total.as_tuple(), strict=True) if a > 0
        ]
        return max(shares, default=0.0)

    def count_in(self, free: Resources) -> int:
        """How many copies of this (non-zero) vector fit in ``free``."""
        if self.is_zero():
            raise ValueError("a zero vector fits any number of times")
        return min(int((b + _EPS) // a) for a, b in zip(self.as_tuple(), free.as_tuple(), strict=True) if a > 0)


ZERO = Resources()
