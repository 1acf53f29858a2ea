"""BACKWARD compatibility between two versions of a feature group, as a schema registry checks it.

A new version may add features that have a default and widen int to float. It may not remove a feature, or
change its type incompatibly, while a model or another feature depends on it; nor may it move the group to
another entity or add a feature without a default (readers of old data would have no value for it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ma_ray.palette.catalog import FeatureGroup
from ma_ray.palette.types import FeatureType

# (old, new) type pairs a reader of the new schema can still read old values as.
_WIDENINGS = {(FeatureType.INT, FeatureType.FLOAT)}


@dataclass(frozen=True)
class Incompatibility:
    group: str
    feature: str
    reason: str
    dependents: tuple[str, ...] = ()

    def __str__(self) -> str:
        who = f"; depended on by {', '.join(self.dependents)}" if self.dependents else ""
        return f"{self.group}.{self.feature}: {self.reason}{who}"


def check_backward(
    old: FeatureGroup, new: FeatureGroup, dependents_of: Callable[[str], list[str]]
) -> list[Incompatibility]:
    """Every reason ``new`` cannot replace ``old``. ``dependents_of(feature_name)`` names what uses a feature
    (models, derived features); removals and type changes are refused only when something depends on them,
    except type changes, which break stored data and are always refused unless they widen."""
    problems: list[Incompatibility] = []
    if old.entity != new.entity:
        problems.append(Incompatibility(new.name, "*", f"entity changed from '{old.entity}' to '{new.entity}'"))
    old_features = {f.name: f for f in old.features}
    new_features = {f.name: f for f in new.features}
    for name, feature in old_features.items():
        replacement = new_features.get(name)
        if replacement is None:
            users = tuple(dependents_of(name))
            if users:
                problems.append(Incompatibility(new.name, name, "removed while still in use", users))
        elif replacement.type != feature.type and (feature.type, replacement.type) not in _WIDENINGS:
            reason = f"type changed from {feature.type} to {replacement.type}"
            problems.append(Incompatibility(new.name, name, reason, tuple(dependents_of(name))))
    for name, feature in new_features.items():
        if name not in old_features and feature.default is None and feature.expression is None:
            problems.append(Incompatibility(new.name, name, "added without a default value"))
    return problems
