"""Named choices that fail loudly.

Every place where a user picks something by name (an attention kind, a variant, an
ablation, a config key) goes through `unknown_name_error`, so the message always lists
the valid names and the closest match instead of a bare KeyError.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


def closest(name: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_name_error(kind: str, name: object, choices: Iterable[str]) -> ValueError:
    choices = sorted(choices)
    hint = closest(str(name), choices)
    did_you_mean = f" Did you mean {hint!r}?" if hint else ""
    return ValueError(
        f"unknown {kind} {name!r}.{did_you_mean} Valid choices: {', '.join(choices)}."
    )


class Registry(Generic[T]):
    """A name -> object map whose lookups name the valid choices on failure."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def __getitem__(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise unknown_name_error(self.kind, name, self._items) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return list(self._items)


def lazy_exports(package: str, names: dict[str, list[str]]) -> tuple[Callable[[str], object], list[str]]:
    """A package's public names, each imported from its module when first used (PEP 562).

    Why: `from core.data import DataConfig` should not import torch through the package's
    other modules, so that the CLI's `list` and `show` start in well under a second.
    Usage in a package's __init__: `__getattr__, __all__ = lazy_exports(__name__, {module: [names]})`."""
    import importlib

    where = {name: module for module, exported in names.items() for name in exported}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__, sorted(where)
