"""User ablations in TOML: the same structure as the catalogue's, checked as strictly."""
from __future__ import annotations

import tomllib
from pathlib import Path

from ablations.specs.schema import AblationSpec, Arm
from core.data.formats import decode_utf8
from core.registry import unknown_name_error


def load_toml(path: Path) -> AblationSpec:
    """name, description, base (a variant), [base_overrides], [defaults], [[arms]] with
    name / description / overrides / compare_to. The first arm is the base (empty overrides).
    A leading UTF-8 BOM (Notepad's) is dropped: tomllib would call the first key invalid."""
    if not path.is_file():
        raise FileNotFoundError(f"ablation file not found: {path}")
    try:
        raw = tomllib.loads(decode_utf8(path.read_bytes()))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file (binary?); an ablation spec is TOML text") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    allowed = {"name", "description", "base", "base_overrides", "defaults", "arms"}
    for key in raw:
        if key not in allowed:
            raise unknown_name_error(f"key in {path.name}", key, allowed)
    arms = raw.get("arms") or []
    if not arms:
        raise ValueError(f"{path}: an ablation needs at least one [[arms]] table")
    from variants import get_variant

    get_variant(raw.get("base", "bert"))
    parsed = []
    for a in arms:
        extra = set(a) - {"name", "description", "overrides", "compare_to"}
        if extra or "name" not in a:
            raise ValueError(f"{path}: each [[arms]] needs a name and may have description, overrides, "
                             f"compare_to (got {sorted(a)})")
        parsed.append(Arm(a["name"], dict(a.get("overrides", {})), a.get("description", ""), a.get("compare_to"),
                          a.get("description") or a["name"]))
    return AblationSpec(raw.get("name", path.stem), raw.get("description", ""), raw.get("base", "bert"),
                        tuple(parsed), dict(raw.get("base_overrides", {})), dict(raw.get("defaults", {})))
