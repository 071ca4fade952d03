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
