"""A dataclass's fields as argparse flags, and parsed flags back into the dataclass.

`ablations.config.RunConfig` is the source of `run`'s flags: each field made with
`arg(...)` becomes one flag with its help, choices and default; a field of a group lands in
that argument group. Numbers keep their checks in the dataclass (`RunConfig.__post_init__`),
so a flag, a TOML default and a Python caller meet the same rule.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from rich.markup import escape

from ablations.config import flag_name, parse_duration


def _value_type(annotation: str) -> type:
    """int, float, bool or str, from a field's annotation ('int | None' -> int)."""
    for t in (bool, int, float):
        if t.__name__ in str(annotation).replace("None", ""):
            return t
    return str


def cli_fields(cls) -> list:
    return [f for f in fields(cls) if f.metadata.get("cli")]


def add_flags(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per field of `cls` made with `arg(...)`, in field order, in its group."""
    groups: dict[str, Any] = {}
    for f in cli_fields(cls):
        m = f.metadata
        target = parser if m["group"] is None else groups.get(m["group"]) or \
            groups.setdefault(m["group"], parser.add_argument_group(m["group"]))
        kw: dict[str, Any] = {"dest": f.name, "help": escape(m["help"])}  # rich would eat "[kss]" as markup
        kind = _value_type(f.type)
        if kind is bool:
            kw["action"] = "store_false" if f.default else "store_true"
        else:
            kw["type"] = str if m.get("parse") else kind
            kw["default"] = None if m.get("parse") else f.default
            if m.get("choices"):
                kw["choices"] = list(m["choices"])
            if m.get("metavar"):
                kw["metavar"] = m["metavar"]
        target.add_argument(flag_name(f), **kw)


def number_flags(cls) -> tuple[str, ...]:
    """The flags that take a number: a negative value is joined to its flag (`--flops=-1e9`)."""
    return tuple(flag_name(f) for f in cli_fields(cls) if _value_type(f.type) in (int, float)
                 or f.metadata.get("parse") == "duration")


def from_args(args: argparse.Namespace, cls) -> Any:
    """The dataclass of the parsed flags; a field's `parse` turns its text into the value."""
    values = {}
    for f in cli_fields(cls):
        value = getattr(args, f.name)
        parse = f.metadata.get("parse")
        if parse == "duration" and value is not None:
            value = parse_duration(value)
        elif parse == "tasks":
            from core.finetune import split_tasks

            value = tuple(split_tasks(value)) if value else ()
        values[f.name] = value
    return cls(**values)
