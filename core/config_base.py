"""Shared machinery for the config dataclasses: strict construction and JSON round-trip.

Unknown keys are errors (x-transformers' rule): a typo in an override must never be
silently ignored, or two ablation arms that look different would be the same run.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from core.registry import unknown_name_error

C = TypeVar("C", bound="StrictConfig")


def check_choice(field: str, value: object, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise unknown_name_error(f"value for {field}", value, choices)


class StrictConfig:
    """Mixin for frozen dataclasses: validated `replace`, `from_dict`, `to_json`."""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def check_keys(cls, keys: Iterable[str]) -> None:
        valid = cls.field_names()
        for key in keys:
            if key not in valid:
                raise unknown_name_error(f"{cls.__name__} field", key, valid)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        cls.check_keys(data)
        return cls(**data)  # type: ignore[call-arg]

    def type_errors(self) -> list[str]:
        """'lr must be float, got 'fast' (str)' for every field whose value does not fit its
        annotation, so that a wrong-typed override fails when it is resolved, not steps later.
        Only plain annotations (bool, int, float, str, None and their unions) are checked."""
        errors = []
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            allowed = _plain_types(str(f.type))
            value = getattr(self, f.name)
            if allowed is not None and not _fits(value, allowed):
                errors.append(f"{f.name} must be {' or '.join(sorted(allowed))}, got {value!r} "
                              f"({type(value).__name__})")
        return errors

    def replace(self: C, **changes: Any) -> C:
        self.check_keys(changes)
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))


_PLAIN = {"bool", "int", "float", "str", "None"}


def _plain_types(annotation: str) -> set[str] | None:
    parts = {p.strip() for p in annotation.split("|")}
    return parts if parts <= _PLAIN else None


def _fits(value: object, allowed: set[str]) -> bool:
    if value is None:
        return "None" in allowed
    if isinstance(value, bool):
        return "bool" in allowed
    if isinstance(value, int):
        return bool(allowed & {"int", "float"})
    if isinstance(value, float):
        return "float" in allowed
    if isinstance(value, str):
        return "str" in allowed
    return False
