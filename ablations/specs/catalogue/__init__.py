"""The named ablations: each a base variant, its arms and the papers' expected directions,
one module per family (`classic`: 2018-2020, `modern`: today's encoders, `recipe`: the
training recipe: optimizer, batch ramp, masking-rate schedule, `long_context`: long inputs), their shared
budgets and components in `budgets`. A new family of ablations is a new module here, listed
in `ABLATIONS` below."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ablations.specs.catalogue import classic, long_context, modern, recipe
from ablations.specs.catalogue.budgets import CPU_BUDGET
from ablations.specs.schema import AblationSpec
from ablations.specs.toml import load_toml
from core.registry import unknown_name_error

ABLATIONS: Mapping[str, AblationSpec] = MappingProxyType({s.name: s for s in (
    classic.albert_reformer(), classic.albert_reformer_loo(), classic.embedding_size(), classic.sharing(),
    classic.attention(), classic.objective(), classic.masking(), classic.packing(), classic.papers(),
    modern.modern(), modern.revisited(), modern.masking_rate(), recipe.optimizer(), recipe.batch_ramp(),
    recipe.mask_schedule(), long_context.long_context(), long_context.long_context_gpu(), classic.seq_scaling())})


def get_ablation(name_or_path: str) -> AblationSpec:
    if name_or_path.endswith(".toml"):
        return load_toml(Path(name_or_path))
    if name_or_path not in ABLATIONS:
        raise unknown_name_error("ablation", name_or_path, list(ABLATIONS))
    return ABLATIONS[name_or_path]


__all__ = ["ABLATIONS", "CPU_BUDGET", "get_ablation"]
