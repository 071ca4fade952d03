"""Today's encoders: the BERT to ModernBERT ladder, the 2018-2020 ideas on top of ModernBERT,
and the training masking rate (issue 32)."""
from __future__ import annotations

from typing import Any

from ablations.specs.catalogue.budgets import CPU_BUDGET, FACTORIZED, LSH, SHARED
from ablations.specs.schema import CHANCE, AblationSpec, Arm, Expectation

# -- today's encoders ----------------------------------------------------------------------------------
# ModernBERT's 128-token window at its 1,024-token pretraining length is an eighth of it: the
# ablations scale the window to the length they train at (at 128 tokens a 128-token window,
# 64 either side, would leave little local), and a window covering the sequence would make the
# local layers global (the catalogue test refuses such an arm as its predecessor's twin)
_WINDOW = "T/8"
# what every arm of `modern` trains with, as today's encoders train: MLM alone, documents
# packed into full sequences, fresh masks, no segment embeddings, no dropout
_MODERN_BASE = {"model.type_vocab_size": 0, "model.sentence_head": False, "model.hidden_dropout": 0.0,
                "model.attention_dropout": 0.0, "model.layer_norm_eps": 1e-5, "data.packing": "full-sentences",
                "data.sentence_task": "none", "data.masking": "dynamic"}
_MODERN_STEPS = [
    ("rope", "rotary positions (RoFormer; theta 10,000)", {"model.positions": "rope"}),
    ("glu", "a GeGLU feed-forward at equal parameters (I = 8H/3)", {"model.ffn": "glu"}),
    ("prenorm", "pre-norm, no biases, layer 0 reading the embedding norm",
     {"model.norm": "pre", "model.bias": False, "model.norm_bias": False, "model.first_layer_prenorm": False}),
    ("local", "local/global attention: a T/8 window, global every third layer, theta 160,000 global and 10,000 "
              "local", {"model.global_every": 3, "model.local_window": _WINDOW, "model.rope_theta": 160_000.0,
                        "model.rope_theta_local": 10_000.0}),
    ("mask30", "30% masking (evaluated at 15%)", {"data.mask_prob": 0.3}),
]


def modern() -> AblationSpec:
    """BERT to ModernBERT one idea at a time; the top rung is the `modernbert` variant."""
    arms = [Arm("bert", {}, "BERT's architecture, trained as today's encoders are (MLM only, full sequences, "
                            "fresh masks, no dropout)")]
    cumulative: dict[str, Any] = {}
    prev = "bert"
    for key, text, overrides in _MODERN_STEPS:
        cumulative = {**cumulative, **overrides}
        arms.append(Arm(f"+{key}", dict(cumulative), f"previous rung + {text}", compare_to=prev, component=text))
        prev = f"+{key}"
    exp = (
        Expectation("rotary positions reach a lower MLM loss than learned ones", "+rope", "eval_mlm_loss", "lower",
                    source="RoFormer (Su et al. 2021), Fig. 3"),
        Expectation("a GLU feed-forward lowers the loss at equal parameters", "+glu", "eval_mlm_loss", "lower",
                    source="Shazeer 2020, Table 1"),
        Expectation("the sliding window saves activation memory at long lengths", "+local", "saved_bytes_long",
                    "lower", source="ModernBERT (Warner et al. 2024), section 2.1"),
        Expectation("the sliding window costs little loss", "+local", "eval_mlm_loss", "not-higher",
                    source="ModernBERT (Warner et al. 2024)"),
        Expectation("30% masking is no worse than 15%", "+mask30", "eval_mlm_loss", "not-higher",
                    source="Wettig et al. 2023, Table 1"),
    )
    return AblationSpec("modern", "BERT to ModernBERT one component at a time: RoPE, GeGLU, bias-free pre-norm, "
                        "local/global attention, 30% masking (the NeoBERT/ModernBERT question, with seeds)", "bert",
                        tuple(arms), base_overrides=_MODERN_BASE, defaults=CPU_BUDGET,
                        gpu_budget={"size": "mini", "seq_len": 512, "batch_size": 64, "tokens": 200_000_000,
                                    "why": "NeoBERT's ladder compares its steps after about 10^9 tokens; the "
                                           "architectural gaps of a few hundredths of a nat need long runs"},
                        expectations=exp)


_MODERNBERT_AT_BUDGET = {"model.local_window": _WINDOW}


def revisited() -> AblationSpec:
    """The 2018-2020 ideas, each on top of today's default: do they still pay for themselves?"""
    arms = [Arm("modernbert", {}, "ModernBERT: RoPE, GeGLU, bias-free pre-norm, local/global, 30% masking"),
            Arm("+factorized", dict(FACTORIZED), "+ factorized embeddings E=64 (ALBERT)", component="factorized embeddings"),
            Arm("+shared", dict(SHARED), "+ all layers sharing one group (ALBERT)", component="cross-layer sharing"),
            Arm("+lsh", dict(LSH), "+ LSH attention in the global layers (Reformer)", component="LSH attention"),
            Arm("+reversible", {"model.reversible": True}, "+ reversible residual layers (Reformer)",
                component="reversible layers"),
            Arm("+sop", {"data.sentence_task": "sop", "data.packing": "segment-pair", "model.sentence_head": True},
                "+ sentence-order prediction on segment pairs (ALBERT)", component="SOP")]
    exp = (
        Expectation("factorized embeddings cut parameters", "+factorized", "params_unique", "lower", 0.9,
                    source="ALBERT Table 3"),
        Expectation("sharing costs MLM loss at equal tokens", "+shared", "eval_mlm_loss", "higher",
                    source="ALBERT Table 4"),
        Expectation("reversible layers cut activation memory", "+reversible", "saved_bytes", "lower", 0.6,
                    source="Reformer (RevNet)"),
        Expectation("an SOP-trained head solves SOP above chance", "+sop", "eval_sop_acc", "higher", versus=CHANCE,
                    source="ALBERT Table 5"),
    )
    return AblationSpec("revisited", "The ideas of 2018-2020 (factorized E, sharing, LSH, reversible layers, SOP) "
                        "each on top of ModernBERT: do they still pay for themselves against today's default?",
                        "modernbert", tuple(arms), base_overrides=_MODERNBERT_AT_BUDGET, defaults=CPU_BUDGET,
                        gpu_budget={"size": "mini", "seq_len": 512, "batch_size": 64, "tokens": 200_000_000,
                                    "why": "as `modern`: loss gaps of a few hundredths need about 10^8 tokens"},
                        expectations=exp)


def masking_rate() -> AblationSpec:
    arms = [Arm("30%", {}, "ModernBERT's 30% masking")]
    for rate in (15, 20, 40):
        arms.append(Arm(f"{rate}%", {"data.mask_prob": rate / 100}, f"{rate}% of the tokens masked in training",
                        component=f"{rate}% masking"))
    exp = (Expectation("40% masking is no worse than 15% at the same evaluation masking", "40%", "eval_mlm_loss",
                       "not-higher", versus="15%", source="Wettig et al. 2023 (Should You Mask 15%?), Table 1"),)
    return AblationSpec("masking_rate", "The training masking rate, 15 / 20 / 30 / 40%, every arm evaluated on the "
                        "same held-out masks at 15% (ModernBERT, NeoBERT, Wettig et al. 2023)", "modernbert",
                        tuple(arms), base_overrides=_MODERNBERT_AT_BUDGET, defaults=CPU_BUDGET,
                        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 256, "tokens": 200_000_000,
                                    "why": "Wettig et al. compare rates downstream after 10^9+ tokens"},
                        expectations=exp)


