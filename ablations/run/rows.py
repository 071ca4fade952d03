"""A unit's results row before training fills it: every field a report reads, present
from the start, so that a failed unit's row has the same columns as a finished one's; and
the `Draft` that the unit's steps fill."""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ablations.plan import Plan, ResolvedArm
from ablations.rows import ROW_VERSION, Row
from ablations.specs import AblationSpec, Arm
from core.device import device_name
from core.train import Budget


def _ref(spec, arm: Arm) -> str | None:
    ref = spec.reference_of(arm)
    return ref.name if ref else None


def row_base(plan: Plan, arm: Arm, res: ResolvedArm, device) -> Row:
    spec = plan.spec
    return Row.from_json({
        "row_version": ROW_VERSION,
        "ablation": spec.name, "arm": arm.name, "description": arm.description,
        "component": arm.component, "compare_to": _ref(spec, arm), "variant": spec.base,
        "overrides": dict(arm.overrides), "config": res.flat, "key": res.key,
        "status": "ok", "error": None, "corpus": plan.corpus.name, "device": device_name(device),
        "workers": plan.config.workers, "seed": res.seed, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "params_unique": None, "params_total": None, "tokens_seen": 0, "wall_s": 0.0,
        "train_loss": [], "train_loss_time": [], "evals": [],
        "eval_mlm_loss": None, "eval_mlm_acc": None, "eval_sentence_acc": None,
        "eval_nsp_acc": None, "eval_sop_acc": None,
        "tokens_per_s": None, "infer_tokens_per_s": None, "train_tokens_per_s": None,
        "peak_mem_bytes": None, "saved_bytes": None, "saved_bytes_long": None, "long_seq_len": None,
        "flops_per_token": None, "utilisation": None, "flops_label": None,
        "flops_per_step": None, "flops_per_token_measured": None, "flops_per_token_analytic": None,
        "train_flops": None, "budget_kind": Budget.of(res.train).kind, "lr_source": res.lr_source,
        "lr_search": res.lr_search,
    })


def twin_row(spec: AblationSpec, twin: Row, arm: Arm) -> Row:
    """A row trained for another arm of the same configuration, recorded under `arm`."""
    return twin.merged({"arm": arm.name, "description": arm.description, "component": arm.component,
                        "compare_to": _ref(spec, arm), "overrides": dict(arm.overrides), "same_as": twin.arm})


class Draft:
    """A unit's row while its steps fill it: each step merges its fields in (as dict.update
    would), so that what a failed step leaves behind is the row."""

    def __init__(self, row: Row):
        self.row = row

    def update(self, fields: Mapping[str, Any] = (), **more: Any) -> None:
        self.row = self.row.merged({**dict(fields), **more})
