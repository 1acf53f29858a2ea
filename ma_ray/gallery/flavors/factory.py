"""Model factory references, ``"package.module:callable"``: how a PyTorch artifact says which code builds the
module its ``state_dict`` fills. Resolved with importlib, never eval; only importable, public, callable
attributes, and never from the standard library's process, file or code-execution modules."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from ma_ray.gallery.errors import UnsafeFactoryError

_REFERENCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z][A-Za-z0-9_]*$")
_FORBIDDEN_ROOTS = frozenset(
    {"builtins", "os", "sys", "subprocess", "shutil", "importlib", "pickle", "marshal", "ctypes", "runpy", "code",
     "socket", "pty", "posix", "nt", "signal", "multiprocessing", "threading", "io", "pathlib", "tempfile"}
)  # fmt: skip


def factory_reference(factory: Callable[..., Any]) -> str:
    """The reference of a module-level callable (what `resolve_factory` turns back into it)."""
    module, name = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    reference = f"{module}:{name}"
    if not module or module == "__main__" or not _REFERENCE.match(reference):
        raise UnsafeFactoryError(
            f"{factory!r} is not importable by name: use a function or class defined at module level in an "
            "importable module (not __main__, not a lambda or nested function)"
        )
    return reference


def resolve_factory(reference: str) -> Callable[..., Any]:
    if not isinstance(reference, str) or not _REFERENCE.match(reference):
        raise UnsafeFactoryError(
            f"model factory {reference!r} is not a reference: expected 'package.module:callable' "
            "(public module-level name)"
        )
    module_name, _, attribute = reference.partition(":")
    if module_name.split(".")[0] in _FORBIDDEN_ROOTS:
        raise UnsafeFactoryError(f"model factory {reference!r} is refused: '{module_name}' is not model code")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnsafeFactoryError(f"model factory {reference!r}: cannot import {module_name}: {error}") from None
    target = getattr(module, attribute, None)
    if target is None or not callable(target):
        raise UnsafeFactoryError(f"model factory {reference!r}: {module_name} has no callable '{attribute}'")
    factory: Callable[..., Any] = target
    return factory


def factory_metadata(options: dict[str, Any]) -> dict[str, Any]:
    """A flavor's manifest entries for save options ``factory`` (callable or reference) and ``factory_kwargs``;
    empty without a factory. Refuses at save time a factory that could not be resolved at load time."""
    factory = options.get("factory")
    if factory is None:
        return {}
    reference = factory if isinstance(factory, str) else factory_reference(factory)
    resolve_factory(reference)
    return {"factory": reference, "factory_kwargs": dict(options.get("factory_kwargs") or {})}
