"""Name rules shared by models, aliases, tags and the stores: lower-case identifiers, nothing else."""

from __future__ import annotations

import re

from ma_ray.gallery.errors import GalleryError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
# "latest" always means the newest version; it can never be set as an alias.
RESERVED_ALIASES = frozenset({"latest"})


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise GalleryError(
            f"invalid model name {name!r}: use a lower-case identifier (a-z, 0-9, _; starting with a letter; "
            "at most 63 characters), e.g. eta_regressor"
        )
    return name


def check_alias_name(alias: str) -> str:
    if not isinstance(alias, str) or not _NAME.match(alias):
        raise GalleryError(
            f"invalid alias name {alias!r}: use a lower-case identifier (a-z, 0-9, _; starting with a letter; "
            "at most 63 characters), e.g. production or staging"
        )
    if alias in RESERVED_ALIASES:
        raise GalleryError(f"'{alias}' is reserved (it always resolves to the newest version); choose another name")
    return alias
