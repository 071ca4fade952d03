"""The training recipe as arms (issue 35): the optimizer, a batch-size ramp and a
masking-rate schedule, on today's encoder (`modernbert`, its window scaled to the training
length as in `modern`).

A recipe choice moves the best learning rate, so all three search each arm's rate by default
(`--lr-search`: OPTIMIZER_GRID, ADAMW_GRID); `--lr` gives every arm one rate instead.
"""
from __future__ import annotations

from ablations.specs.catalogue.budgets import CPU_BUDGET
from ablations.specs.catalogue.modern import _MODERNBERT_AT_BUDGET
from ablations.specs.schema import AblationSpec, Arm, Expectation

# The searches, as multiples of each arm's width-rule rate (1e-3 x 128 / H), each point
# trained on half of the budget: a quarter-budget search favours rates too high for the full
# budget (findings/2026-12-01-shared-recipe.md). Every optimizer's rate is on AdamW's scale
# (core.optim: Muon's update matched to AdamW's RMS, Adafactor's relative step at
# adafactor_lr_ratio x lr), yet on kowiki at the CPU budget their best rates still spread over
# two orders of magnitude: with 0.5-8x, AdamW chose 2x and StableAdamW 4x (both bracketed),
# Muon 8x and Adafactor 0.5x (both at an edge). So `optimizer` searches 1/8x to 32x, and the
# AdamW arms of batch_ramp and mask_schedule the 0.5-8x that brackets AdamW.
OPTIMIZER_GRID = "0.125,0.25,0.5,1,2,4,8,16,32"
ADAMW_GRID = "0.5,1,2,4,8"
_SEARCH_FRACTION = 0.5


def _searched(grid: str) -> dict:
    return {"lr_search": True, "lr_grid": grid, "lr_search_fraction": _SEARCH_FRACTION}


_GPU = {"size": "mini", "seq_len": 512, "batch_size": 64, "tokens": 200_000_000}


def optimizer() -> AblationSpec:
    arms = (Arm("adamw", {}, "AdamW (torch's fused kernel): the baseline"),
            Arm("stable_adamw", {"train.optimizer": "stable_adamw"},
                "StableAdamW (torch-optimi): AdamW with per-tensor update clipping, ModernBERT's optimizer",
                component="StableAdamW"),
            Arm("muon", {"train.optimizer": "muon"},
                "Muon (torch.optim.Muon) on the encoder's matrices, its update at AdamW's RMS; AdamW on embeddings, "
                "norms, biases and heads", component="Muon"),
            Arm("adafactor", {"train.optimizer": "adafactor"},
                "Adafactor (torch.optim.Adafactor): factored second moments, no first moment, relative steps",
                component="Adafactor"))
    exp = [
        Expectation("Muon reaches a lower MLM loss than AdamW at equal tokens", "muon", "eval_mlm_loss", "lower",
                    source="Moonlight (Liu et al. 2025), Table 1 and Fig. 3; modded-nanogpt's speedrun records"),
        Expectation("StableAdamW is within noise of AdamW at this scale (its gain is stability)", "stable_adamw",
                    "eval_mlm_loss", "similar", source="Wortsman et al. 2023, section 3.4; ModernBERT (Warner et al. "
                                                       "2024)"),
        Expectation("Adafactor's factored moments cost a little loss", "adafactor", "eval_mlm_loss", "higher",
                    source="Shazeer & Stern 2018 (Adafactor), Table 2"),
        Expectation("Adafactor's optimizer state is far smaller than AdamW's (at most a tenth)", "adafactor",
                    "optimizer_state_bytes", "lower", 0.1, source="Shazeer & Stern 2018 (Adafactor), section 3"),
    ]
    return AblationSpec(
        "optimizer", "AdamW, StableAdamW, Muon and Adafactor, each at its own best rate (--lr-search by default): "
        "loss at equal tokens, and what each optimizer's state costs in memory",
        "modernbert", arms, base_overrides=_MODERNBERT_AT_BUDGET,
        defaults={**CPU_BUDGET, **_searched(OPTIMIZER_GRID)},
        gpu_budget={**_GPU, **_searched(OPTIMIZER_GRID),
                    "why": "Moonlight compares Muon and AdamW over 10^9-10^11 tokens; gaps of a few hundredths "
                           "need long runs"},
        expectations=tuple(exp))


def batch_ramp() -> AblationSpec:
    arms = (Arm("none", {}, "the configured batch from the first step"),
            Arm("ramp/10%", {"train.batch_size_warmup": 0.1, "train.batch_size_warmup_start": 0.25},
                "the batch grows from 1/4 to all of it over the first 10% of the tokens (ModernBERT's short "
                "warm-up of the batch)", component="a short batch ramp"),
            Arm("ramp/60%", {"train.batch_size_warmup": 0.6, "train.batch_size_warmup_start": 0.125},
                "the batch grows from 1/8 to all of it over the first 60% of the tokens (cramming's ramp)",
                component="cramming's batch ramp"))
    exp = (Expectation("a batch ramp is no worse at equal tokens", "ramp/60%", "eval_mlm_loss", "not-higher",
                       source="Cramming (Geiping & Goldstein 2023), section 4.3"),)
    return AblationSpec(
        "batch_ramp", "A batch-size ramp at equal tokens: none, a short one from 1/4 of the batch over 10% of the "
        "budget (ModernBERT) and a long one from 1/8 over 60% (cramming); the rate follows tokens, not steps",
        "modernbert", arms, base_overrides=_MODERNBERT_AT_BUDGET, defaults={**CPU_BUDGET, **_searched(ADAMW_GRID)},
        gpu_budget={**_GPU, **_searched(ADAMW_GRID),
                    "why": "cramming measures its ramp over a day's budget (about 10^9 tokens)"},
        expectations=exp)


def mask_schedule() -> AblationSpec:
    arms = (Arm("15%", {"data.mask_prob": 0.15}, "15% masking throughout (BERT)"),
            Arm("30%", {"data.mask_prob": 0.30}, "30% masking throughout (ModernBERT)", component="30% masking"),
            Arm("30%→15%", {"data.mask_prob": 0.30, "data.mask_prob_end": 0.15},
                "the masking rate falls linearly from 30% to 15% over the budget (mmBERT's direction)",
                component="a falling masking rate"))
    return AblationSpec(
        "mask_schedule", "The training masking rate constant at 15% or 30%, or falling from 30% to 15% over the "
        "budget (mmBERT lowers it from 30% to 5%); every arm scored on the same 15% held-out masks",
        "modernbert", arms, base_overrides=_MODERNBERT_AT_BUDGET, defaults={**CPU_BUDGET, **_searched(ADAMW_GRID)},
        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 256, "tokens": 200_000_000,
                    **_searched(ADAMW_GRID),
                    "why": "as masking_rate: rates are compared after 10^8-10^9 tokens"})
