"""The 2018-2020 ablations: BERT, ALBERT, RoBERTa and the Reformer, one component at a time,
each with the papers' expected directions."""
from __future__ import annotations

from typing import Any

from ablations.specs.catalogue.budgets import (
    AR_GPU_BUDGET,
    ATTENTION_BUDGET,
    COMPONENTS,
    CPU_BUDGET,
    MAIN_JOB_BUDGET,
    SHARED,
)
from ablations.specs.schema import CHANCE, AblationSpec, Arm, Expectation


def albert_reformer() -> AblationSpec:
    arms = [Arm("bert", {}, "BERT: the starting point")]
    cumulative: dict[str, Any] = {}
    prev = "bert"
    for key, text, overrides in COMPONENTS:
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
        "bert", tuple(arms), gpu_budget=AR_GPU_BUDGET, defaults=MAIN_JOB_BUDGET, expectations=exp)


# each component's keys set back to BERT's values (core.model.ModelConfig, core.data.DataConfig)
_WITHOUT = {"factorized": {"model.embedding_size": 0}, "shared": {"model.sharing": "none", "model.num_groups": 0},
            "sop": {"data.sentence_task": "nsp"}, "lsh": {"model.attention": "full"},
            "reversible": {"model.norm": "post", "model.reversible": False}}


def albert_reformer_loo() -> AblationSpec:
    """Each component removed from the full model: its effect where every other one is
    present, which the ladder (one order of adding them) cannot show."""
    full = {k: v for _, _, overrides in COMPONENTS for k, v in overrides.items()}
    arms = [Arm("albert-reformer", {}, "ALBERT-Reformer: every component")]
    for key, text, _ in COMPONENTS:
        arms.append(Arm(f"ar-no-{key}", _WITHOUT[key], f"ALBERT-Reformer without {text}",
                        component=f"removing {text}"))
    exp = (Expectation("reversible layers cut activation memory", "ar-no-reversible", "saved_bytes", "higher",
                       source="Reformer (RevNet)"),)
    return AblationSpec("albert_reformer_loo", "ALBERT-Reformer with each component removed in turn (leave-one-out)",
                        "bert", tuple(arms), base_overrides=full, gpu_budget=AR_GPU_BUDGET, defaults=CPU_BUDGET,
                        expectations=exp)


# E/H from 1/8 to 1/2 at mini's H=256 and 1/4 to 1/2 at micro's 128 (ALBERT Table 3: 1/12 to 1/3)
_EMBEDDING_SIZES = (32, 64)


def embedding_size() -> AblationSpec:
    arms = [Arm("E=H", {}, "unfactorized: E = H")]
    for e in _EMBEDDING_SIZES:
        arms.append(Arm(f"E={e}", {"model.embedding_size": e}, f"factorized, E={e}", component=f"E={e}"))
    arms.append(Arm("E=H shared", dict(SHARED), "E = H, all layers shared", component="sharing"))
    for e in _EMBEDDING_SIZES:
        arms.append(Arm(f"E={e} shared", {"model.embedding_size": e, **SHARED}, f"E={e}, all layers shared",
                        compare_to="E=H shared", component=f"E={e} (shared)"))
    exp = (Expectation("E=64 cuts parameters", "E=64", "params_unique", "lower", 0.8, source="ALBERT Table 3"),
           Expectation("sharing all layers costs MLM loss at equal tokens", "E=H shared", "eval_mlm_loss", "higher",
                       versus="E=H", source="ALBERT Table 4"))
    return AblationSpec("embedding_size", "Factorized embedding size E, with and without sharing (ALBERT Table 3)",
                        "bert", tuple(arms), gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 50_000_000, "why": "ALBERT Table 3 differences are 0.5-1 point downstream; their MLM-loss gaps need about 3,000 steps of 128 x 128"},
                        defaults=CPU_BUDGET, expectations=exp)


def sharing() -> AblationSpec:
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


def attention() -> AblationSpec:
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


def objective() -> AblationSpec:
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


def masking() -> AblationSpec:
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


def packing() -> AblationSpec:
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


def papers() -> AblationSpec:
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
                component="the RoBERTa recipe", compare_to="bert"),
            Arm("reformer", recipe("reformer"), "the Reformer: LSH attention, reversible pre-norm layers, chunked FFN",
                component="the Reformer's blocks", compare_to="bert"),
            # the window scaled to the training length, as in `modern`: a 128-token window at the
            # CPU budget's 128 tokens would be full attention in every layer
            Arm("modernbert", {**recipe("modernbert"), "model.local_window": "T/8"},
                "ModernBERT: RoPE, GeGLU, bias-free pre-norm, local (T/8) / global attention, 30% masking, no NSP",
                component="the ModernBERT recipe", compare_to="bert"))
    exp = (Expectation("ALBERT has far fewer parameters than BERT", "albert", "params_unique", "lower",
                       source="ALBERT Table 1"),)
    return AblationSpec("papers", "BERT vs ALBERT vs RoBERTa vs the Reformer vs ModernBERT recipes at one budget; add "
                        "--downstream korsts,question_pair,korquad for the fine-tuned comparison (the ReforBERT "
                        "table's columns)", "bert", arms,
                        gpu_budget={"size": "mini", "seq_len": 128, "batch_size": 128, "tokens": 100_000_000,
                                    "why": "downstream gaps between the recipes need a pretrained encoder: "
                                           "about 10^8 tokens at mini"},
                        defaults=CPU_BUDGET, expectations=exp)


def seq_scaling() -> AblationSpec:
    """Every attention kind against length: full (bert), the sliding window alone (bert-local) and
    with global layers (modernbert), BigBird (bert-bigbird), LSH (bert-lsh; with reversible
    layers: reformer, albert-reformer), from 128 to 16,384 tokens at a constant 16,384 tokens a
    batch (one sequence at the longest); a length out of memory is recorded as such."""
    return AblationSpec("seq_scaling", "Memory and speed against sequence length, 128 to 16,384 tokens, for every "
                        "attention kind: bert (full), bert-local, modernbert (window + global), bert-bigbird, bert-lsh, "
                        "reformer and albert-reformer (no training)", "bert", (Arm("bert", {}),), kind="bench",
                        bench_variants=("bert", "bert-local", "modernbert", "bert-bigbird", "bert-lsh", "reformer",
                                        "albert-reformer"),
                        bench_seq_lens=(128, 256, 512, 1024, 2048, 4096, 8192, 16384),
                        defaults={"tokens_per_batch": 16384})


