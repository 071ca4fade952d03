"""The named ablations: each a base variant, its arms and the papers' expected directions.

Every training ablation shares one CPU budget (`CPU_BUDGET`): the size, vocabulary and
token budget at which a model leaves the unigram stage in a few minutes on 2 cores (the
rate follows each arm's width, `core.optim.lr_for_width`)
(docs/findings/2026-11-23-learning-budget.md gives the measurements). `gpu_budget` is where
each paper's loss effect is expected to show.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ablations.specs.schema import CHANCE, AblationSpec, Arm, Expectation
from ablations.specs.toml import load_toml
from core.registry import unknown_name_error

# E=64 stays below H at every size the budgets use (micro's H=128 included); ALBERT Table 3
# measured E from 64 to 768 (E=128 is its default at H=768)
_FACT = {"model.embedding_size": 64}
_SHARE = {"model.sharing": "all", "model.num_groups": 1}
_SOP = {"data.sentence_task": "sop"}
# buckets of 32: the CPU budget's 128-token sequences hold 4 buckets (LSH with only two
# buckets would be full attention in disguise); two hash rounds, the Reformer paper's LSH-2,
# since this component is in 5 of albert_reformer's 11 arms (`attention` sweeps 1 to 8)
_LSH = {"model.attention": "lsh", "model.lsh_bucket_size": 32, "model.lsh_n_hashes": 2}
# (docs/findings/2026-11-23-learning-budget.md); every training ablation's default
CPU_BUDGET = {"size": "micro", "vocab_size": 4000, "seq_len": 128, "batch_size": 16, "tokens": 550_000}
# `attention`: the CPU budget's size, vocabulary and tokens per step, at 4x the length so
# that LSH's 64-token buckets number 8 (the Reformer's own setting is 64-token buckets, 8+
# of them); 40,000 tokens at mini and 1024 (the earlier budget) left every arm at the unigram
# stage
ATTENTION_BUDGET = {**CPU_BUDGET, "seq_len": 512, "batch_size": 4}
_REV = {"model.norm": "pre", "model.reversible": True}
_COMPONENTS = [("factorized", "factorized embeddings E=64", _FACT), ("shared", "all layers share one group", _SHARE),
               ("sop", "sentence-order prediction instead of NSP", _SOP), ("lsh", "LSH attention", _LSH),
               ("reversible", "reversible residual layers (pre-LN)", _REV)]


# The main job's budget: the ladder's six arms at CPU_BUDGET took 625 s on a fresh 2-core
# machine (2026-12-01, 0.21 s per dense step); at 400,000 tokens about 490 s, and its
# slowest learner (+shared) was 0.10 nats below the training unigram there
# (docs/findings/2026-12-01-main-job-time.md)
MAIN_JOB_BUDGET = {**CPU_BUDGET, "tokens": 400_000}
_AR_GPU_BUDGET = {"size": "small", "seq_len": 512, "batch_size": 128, "tokens": 200_000_000,
                  "why": "loss gaps between the rungs appear after about 10^8 tokens (ALBERT Fig. 2 scale); "
                         "parameters, memory and speed show at any budget"}


def _albert_reformer() -> AblationSpec:
    arms = [Arm("bert", {}, "BERT: the starting point")]
    cumulative: dict[str, Any] = {}
    prev = "bert"
    for key, text, overrides in _COMPONENTS:
        cumulative = {**cumulative, **overrides}
        arms.append(Arm(f"+{key}", dict(cumulative), f"previous rung + {text}", compare_to=prev, component=text))
        prev = f"+{key}"
    exp = (
        Expectation("factorized embeddings cut parameters sharply", "+factorized", "params_unique", "lower", 0.85,
                    source="ALBERT Table 3"),
        Expectation("sharing all layers cuts parameters by about L times (encoder)", "+shared", "params_unique",
                    "lower", 0.7, source="ALBERT Table 4"),
        Expectation("LSH is slower than full attention at short lengths", "+lsh", "tokens_per_s", "lower",
                    source="Reformer; Long Range Arena"),
        Expectation("LSH saves activation memory at long lengths", "+lsh", "saved_bytes_long", "lower",
                    source="Reformer"),
        Expectation("reversible layers cut activation memory", "+reversible", "saved_bytes", "lower", 0.5,
                    source="Reformer (RevNet)"),
        Expectation("an NSP-trained model does not solve SOP; an SOP-trained one does", "+sop", "eval_sop_acc",
                    "higher", versus="bert", source="ALBERT Table 5 (SOP 86.5% vs 52.0%)"),
    )
    return AblationSpec(
        "albert_reformer",
        "BERT to ALBERT-Reformer one component at a time: every component's marginal effect on parameters, "
        "memory, speed and loss, in the order the papers added them (albert_reformer_loo removes each in turn)",
        "bert", tuple(arms), gpu_budget=_AR_GPU_BUDGET, defaults=MAIN_JOB_BUDGET, expectations=exp)


# each component's keys set back to BERT's values (core.model.ModelConfig, core.data.DataConfig)
_WITHOUT = {"factorized": {"model.embedding_size": 0}, "shared": {"model.sharing": "none", "model.num_groups": 0},
            "sop": {"data.sentence_task": "nsp"}, "lsh": {"model.attention": "full"},
            "reversible": {"model.norm": "post", "model.reversible": False}}


def _albert_reformer_loo() -> AblationSpec:
    """Each component removed from the full model: its effect where every other one is
    present, which the ladder (one order of adding them) cannot show."""
    full = {k: v for _, _, overrides in _COMPONENTS for k, v in overrides.items()}
    arms = [Arm("albert-reformer", {}, "ALBERT-Reformer: every component")]
    for key, text, _ in _COMPONENTS:
        arms.append(Arm(f"ar-no-{key}", _WITHOUT[key], f"ALBERT-Reformer without {text}",
                        component=f"removing {text}"))
    exp = (Expectation("reversible layers cut activation memory", "ar-no-reversible", "saved_bytes", "higher",
                       source="Reformer (RevNet)"),)
    return AblationSpec("albert_reformer_loo", "ALBERT-Reformer with each component removed in turn (leave-one-out)",
                        "bert", tuple(arms), base_overrides=full, gpu_budget=_AR_GPU_BUDGET, defaults=CPU_BUDGET,
                        expectations=exp)


# E/H from 1/8 to 1/2 at mini's H=256 and 1/4 to 1/2 at micro's 128 (ALBERT Table 3: 1/12 to 1/3)
_EMBEDDING_SIZES = (32, 64)


def _embedding_size() -> AblationSpec:
    arms = [Arm("E=H", {}, "unfactorized: E = H")]
    for e in _EMBEDDING_SIZES:
        arms.append(Arm(f"E={e}", {"model.embedding_size": e}, f"factorized, E={e}", component=f"E={e}"))
    arms.append(Arm("E=H shared", dict(_SHARE), "E = H, all layers shared", component="sharing"))
    for e in _EMBEDDING_SIZES:
        arms.append(Arm(f"E={e} shared", {"model.embedding_size": e, **_SHARE}, f"E={e}, all layers shared",
                        compare_to="E=H shared", component=f"E={e} (shared)"))
    exp = (Expectation("E=64 cuts parameters", "E=64", "params_unique", "lower", 0.8, source="ALBERT Table 3"),
           Expectation("sharing all layers costs MLM loss at equal tokens", "E=H shared", "eval_mlm_loss", "higher",
                       versus="E=H", source="ALBERT Table 4"))
    return AblationSpec("embedding_size", "Factorized embedding size E, with and without sharing (ALBERT Table 3)",
                        "bert", tuple(arms), gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 50_000_000, "why": "ALBERT Table 3 differences are 0.5-1 point downstream; their MLM-loss gaps need about 3,000 steps of 128 x 128"},
                        defaults=CPU_BUDGET, expectations=exp)


def _sharing() -> AblationSpec:
    arms = [Arm("none", {}, "no sharing")]
    for strategy in ("all", "attention", "ffn"):
        for groups in (1, 2, 4, "L"):
            # "L" (one group per layer) is resolved against the run's model size by the runner
            name = f"{strategy}/{groups}"
            arms.append(Arm(name, {"model.sharing": strategy, "model.num_groups": groups}, f"share {strategy} across layers in {groups} group(s)",
                            component=f"sharing {strategy}, {groups} group(s)"))
    exp = (Expectation("all-shared, one group cuts parameters", "all/1", "params_unique", "lower", 0.7,
                       source="ALBERT Table 4"),
           Expectation("all-shared, one group costs MLM loss at equal tokens", "all/1", "eval_mlm_loss", "higher",
                       source="ALBERT Table 4"))
    return AblationSpec("sharing", "Cross-layer sharing: all / attention / ffn / none with 1, 2, 4 and L groups "
                        "(ALBERT Table 4)", "albert", tuple(arms), base_overrides={"model.sharing": "none",
                                                                                  "model.num_groups": 0},
                        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 50_000_000, "why": "sharing costs a few tenths of MLM loss once models are past the unigram stage"},
                        defaults=CPU_BUDGET, expectations=exp)


def _attention() -> AblationSpec:
    arms = [Arm("full", {}, "full attention (separate Q, K), SDPA"),
            Arm("full-shared-qk", {"model.attention": "full-shared-qk"}, "full attention with shared, normalised QK",
                component="shared QK")]
    for n in (1, 2, 4, 8):
        arms.append(Arm(f"lsh/{n}", {"model.attention": "lsh", "model.lsh_n_hashes": n}, f"LSH, {n} hash round(s)",
                        compare_to="full-shared-qk", component=f"LSH with {n} hash(es) vs shared-QK full attention"))
    exp = (Expectation("LSH with 8 hashes is slower than with 1", "lsh/8", "tokens_per_s", "lower", versus="lsh/1",
                       source="Reformer Table 2"),
           # at the run's long length (2x the training length), where the claim is made; at the
           # training length itself 4 hash rounds of 64-token buckets save nothing yet
           Expectation("LSH saves activation memory at long lengths", "lsh/4", "saved_bytes_long", "lower",
                       versus="full", source="Reformer"),
           Expectation("more hash rounds give a lower loss", "lsh/8", "eval_mlm_loss", "lower", versus="lsh/1",
                       source="Reformer Fig. 5"))
    return AblationSpec("attention", "Full vs full-shared-QK vs LSH (1, 2, 4, 8 hashes) at a long sequence length",
                        "roberta", tuple(arms), gpu_budget={"size": "mini", "seq_len": 1024, "batch_size": 16, "tokens": 50_000_000, "why": "the Reformer compares hash rounds after about 10^8 tokens; speed and memory show at any budget"},
                        defaults=ATTENTION_BUDGET,
                        expectations=exp)


def _objective() -> AblationSpec:
    arms = [Arm("nsp", {}, "BERT's next-sentence prediction"),
            Arm("none", {"data.sentence_task": "none"}, "no sentence loss (head kept, untrained)", component="no sentence task"),
            Arm("sop", {"data.sentence_task": "sop"}, "ALBERT's sentence-order prediction", component="SOP")]
    exp = (Expectation("an SOP-trained model solves NSP better than an untrained head", "sop", "eval_nsp_acc",
                       "higher", versus="none", source="ALBERT Table 5"),
           Expectation("an NSP-trained model does not solve SOP (near chance)", "nsp", "eval_sop_acc", "lower",
                       versus="sop", source="ALBERT Table 5"),
           Expectation("an NSP-trained head is above chance", "nsp", "eval_nsp_acc", "higher", versus=CHANCE,
                       source="BERT"))
    return AblationSpec("objective", "Sentence task none / NSP / SOP, each evaluated on both NSP and SOP pairs "
                        "(ALBERT Table 5)", "bert", tuple(arms), gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 50_000_000, "why": "SOP accuracy leaves chance after a few thousand steps (ALBERT Table 5 at 125k steps shows 86% vs 52%)"},
                        defaults=CPU_BUDGET, expectations=exp)


def _masking() -> AblationSpec:
    arms = [Arm("static/10", {}, "static masks, 10 copies (BERT)"),
            Arm("static/1", {"data.dupe_factor": 1}, "static masks, one copy", component="one static copy"),
            Arm("dynamic", {"data.masking": "dynamic"}, "fresh masks every epoch (RoBERTa)", component="dynamic masking"),
            Arm("whole-word", {"data.mask_unit": "whole-word"}, "whole-word masking",
                component="whole-word masking"),
            Arm("ngram", {"data.mask_unit": "ngram"}, "n-gram (n <= 3) of whole words",
                component="n-gram masking")]
    exp = (Expectation("dynamic masking matches static masking", "dynamic", "eval_mlm_loss", "similar",
                       source="RoBERTa Table 1"),)
    return AblationSpec("masking", "Static (1 and 10 copies) vs dynamic; token vs whole-word vs n-gram (RoBERTa Table 1)",
                        "bert", tuple(arms), gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 256, "tokens": 200_000_000, "why": "RoBERTa Table 1 differences are a few tenths of a point: they need long runs and several seeds"},
                        defaults=CPU_BUDGET, expectations=exp)


def _packing() -> AblationSpec:
    arms = [Arm("segment-pair+nsp", {}, "BERT: segment pairs with NSP"),
            Arm("sentence-pair+nsp", {"data.packing": "sentence-pair"}, "single-sentence pairs with NSP",
                component="sentence pairs"),
            Arm("full-sentences", {"data.packing": "full-sentences", "data.sentence_task": "none"},
                "RoBERTa: fill across documents, no NSP", component="full-sentences"),
            Arm("doc-sentences", {"data.packing": "doc-sentences", "data.sentence_task": "none"},
                "fill within a document, no NSP", component="doc-sentences")]
    return AblationSpec("packing", "Input packing: segment-pair+NSP, sentence-pair+NSP, full-sentences, doc-sentences "
                        "(RoBERTa Table 2)", "bert", tuple(arms), gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 256, "tokens": 200_000_000, "why": "RoBERTa Table 2 differences are about a point downstream"},
                        defaults=CPU_BUDGET)


def _papers() -> AblationSpec:
    """The three papers' recipes, each a variant's model and data choices applied to `bert`,
    so that one run compares them at one budget (and, with --downstream, after fine-tuning,
    as ReforBERT's tables did)."""
    from variants import get_variant

    bert = get_variant("bert")

    def recipe(name: str) -> dict[str, Any]:  # what the variant changes against bert's choices
        variant = get_variant(name)
        return {**{f"model.{k}": v for k, v in variant.model.items() if bert.model.get(k) != v},
                **{f"data.{k}": v for k, v in variant.data.items() if bert.data.get(k) != v}}

    arms = (Arm("bert", {}, "BERT: NSP, static token masking, separate embeddings and layers"),
            Arm("albert", recipe("albert"), "ALBERT: factorized E=128, all layers shared, SOP, n-gram masking",
                component="the ALBERT recipe"),
            Arm("roberta", recipe("roberta"), "RoBERTa: no sentence task, full-sentences packing, dynamic masking",
                component="the RoBERTa recipe"))
    exp = (Expectation("ALBERT has far fewer parameters than BERT", "albert", "params_unique", "lower",
                       source="ALBERT Table 1"),)
    return AblationSpec("papers", "BERT vs ALBERT vs RoBERTa recipes at one budget; add --downstream korsts,"
                        "question_pair for the fine-tuned comparison", "bert", arms,
                        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 100_000_000,
                                    "why": "downstream gaps between the recipes need a pretrained encoder: "
                                           "about 10^8 tokens at mini"},
                        defaults=CPU_BUDGET, expectations=exp)


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


def _modern() -> AblationSpec:
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
        Expectation("the sliding window costs little loss", "+local", "eval_mlm_loss", "similar",
                    source="ModernBERT (Warner et al. 2024)"),
        Expectation("30% masking is no worse than 15%", "+mask30", "eval_mlm_loss", "similar",
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


def _revisited() -> AblationSpec:
    """The 2018-2020 ideas, each on top of today's default: do they still pay for themselves?"""
    arms = [Arm("modernbert", {}, "ModernBERT: RoPE, GeGLU, bias-free pre-norm, local/global, 30% masking"),
            Arm("+factorized", dict(_FACT), "+ factorized embeddings E=64 (ALBERT)", component="factorized embeddings"),
            Arm("+shared", dict(_SHARE), "+ all layers sharing one group (ALBERT)", component="cross-layer sharing"),
            Arm("+lsh", dict(_LSH), "+ LSH attention in the global layers (Reformer)", component="LSH attention"),
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


def _masking_rate() -> AblationSpec:
    arms = [Arm("30%", {}, "ModernBERT's 30% masking")]
    for rate in (15, 20, 40):
        arms.append(Arm(f"{rate}%", {"data.mask_prob": rate / 100}, f"{rate}% of the tokens masked in training",
                        component=f"{rate}% masking"))
    exp = (Expectation("40% masking is no worse than 15% at the same evaluation masking", "40%", "eval_mlm_loss",
                       "similar", versus="15%", source="Wettig et al. 2023 (Should You Mask 15%?), Table 1"),)
    return AblationSpec("masking_rate", "The training masking rate, 15 / 20 / 30 / 40%, every arm evaluated on the "
                        "same held-out masks at 15% (ModernBERT, NeoBERT, Wettig et al. 2023)", "modernbert",
                        tuple(arms), base_overrides=_MODERNBERT_AT_BUDGET, defaults=CPU_BUDGET,
                        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 256, "tokens": 200_000_000,
                                    "why": "Wettig et al. compare rates downstream after 10^9+ tokens"},
                        expectations=exp)


def _seq_scaling() -> AblationSpec:
    return AblationSpec("seq_scaling", "Memory and speed against sequence length for bert, reformer, "
                        "albert-reformer and modernbert (no training)", "bert", (Arm("bert", {}),), kind="bench",
                        bench_variants=("bert", "reformer", "albert-reformer", "modernbert"),
                        bench_seq_lens=(128, 256, 512, 1024, 2048, 4096, 8192),
                        defaults={"tokens_per_batch": 8192})


ABLATIONS: Mapping[str, AblationSpec] = MappingProxyType({s.name: s for s in (
    _albert_reformer(), _albert_reformer_loo(), _embedding_size(), _sharing(), _attention(), _objective(), _masking(), _packing(),
    _papers(), _modern(), _revisited(), _masking_rate(), _seq_scaling())})


def get_ablation(name_or_path: str) -> AblationSpec:
    if name_or_path.endswith(".toml"):
        return load_toml(Path(name_or_path))
    if name_or_path not in ABLATIONS:
        raise unknown_name_error("ablation", name_or_path, list(ABLATIONS))
    return ABLATIONS[name_or_path]


