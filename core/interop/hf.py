"""Conversion to and from HF transformers (BERT, ALBERT, RoBERTa).

Parity with `modeling_bert.py` and friends is this project's proof of correctness, and
`to_hf` is the export path for downstream fine-tuning. transformers is imported when
called, through `core.extras` (the `hf` extra): never needed to train.

Supported HF classes: BertForPreTraining, BertForMaskedLM, AlbertForPreTraining,
AlbertForMaskedLM, RobertaForMaskedLM, ModernBertForMaskedLM (pre-norm models with
rotary positions and a GLU: `core.interop.hf_modernbert`), and BigBirdForPreTraining and
BigBirdForMaskedLM (`attention="bigbird"`: `core.interop.hf_bigbird`). ALBERT's layout covers every factorized or
all-shared model (num_hidden_groups = our num_groups), so factorized BERTs export through
it too; an all-shared model with E = H gets the identity as ALBERT's E->H projection,
which HF's ALBERT always has (and which our E = H models do without).

The exported config names our special-token ids ([PAD] 0, [CLS] 2, [SEP] 3: bos and eos),
never the family's defaults (RoBERTa's <s> 0 and </s> 2 are [PAD] and [CLS] here).
"""
from __future__ import annotations

from typing import Any

import torch

from core.data import CLS, SEP
from core.extras import require
from core.interop.hf_modernbert import from_hf_modernbert, modernbert_problems, to_hf_modernbert
from core.model import ModelConfig, PretrainingModel

FEATURE = "converting to or from HF transformers"

_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new"}


def _family(hf_model: Any) -> str:
    name = type(hf_model).__name__
    for fam in ("Bert", "Albert", "Roberta"):
        if name.startswith(fam):
            return fam.lower()
    raise ValueError(
        f"from_hf supports BertForPreTraining/BertForMaskedLM, AlbertForPreTraining/AlbertForMaskedLM, "
        f"RobertaForMaskedLM, ModernBertForMaskedLM and BigBirdForPreTraining/BigBirdForMaskedLM, not {name}"
    )


def _name_map(cfg: ModelConfig, family: str) -> dict[str, str]:
    """our state-dict name -> HF state-dict name (weights and biases alike)."""
    p = family  # HF's base_model_prefix: "bert", "albert" or "roberta"
    m: dict[str, str] = {}

    def wb(ours: str, theirs: str) -> None:
        m[ours + ".weight"], m[ours + ".bias"] = theirs + ".weight", theirs + ".bias"

    m["embeddings.word.weight"] = f"{p}.embeddings.word_embeddings.weight"
    m["embeddings.position.weight"] = f"{p}.embeddings.position_embeddings.weight"
    if cfg.type_vocab_size:
        m["embeddings.token_type.weight"] = f"{p}.embeddings.token_type_embeddings.weight"
    wb("embeddings.norm", f"{p}.embeddings.LayerNorm")
    if family == "albert":
        if cfg.factorized:  # at E = H ours has no projection; HF's is the identity (`_load_into_hf`)
            wb("embeddings.project", _PROJECTION)
        for g in range(cfg.num_groups):
            layer = f"{p}.encoder.albert_layer_groups.{g}.albert_layers.0"
            for ours, theirs in (("query", "query"), ("key", "key"), ("value", "value"), ("out", "dense")):
                wb(f"encoder.attention.{g}.fn.{ours}", f"{layer}.attention.{theirs}")
            wb(f"encoder.attention.{g}.norm", f"{layer}.attention.LayerNorm")
            wb(f"encoder.ffn.{g}.fn.fn.fc1", f"{layer}.ffn")
            wb(f"encoder.ffn.{g}.fn.fn.fc2", f"{layer}.ffn_output")
            wb(f"encoder.ffn.{g}.norm", f"{layer}.full_layer_layer_norm")
    else:
        for i in range(cfg.num_layers):
            layer = f"{p}.encoder.layer.{i}"
            for q in ("query", "key", "value"):
                wb(f"encoder.attention.{i}.fn.{q}", f"{layer}.attention.self.{q}")
            wb(f"encoder.attention.{i}.fn.out", f"{layer}.attention.output.dense")
            wb(f"encoder.attention.{i}.norm", f"{layer}.attention.output.LayerNorm")
            wb(f"encoder.ffn.{i}.fn.fn.fc1", f"{layer}.intermediate.dense")
            wb(f"encoder.ffn.{i}.fn.fn.fc2", f"{layer}.output.dense")
            wb(f"encoder.ffn.{i}.norm", f"{layer}.output.LayerNorm")
    head = {"bert": "cls.predictions", "albert": "predictions", "roberta": "lm_head"}[family]
    wb("mlm_head.dense", f"{head}.transform.dense" if family == "bert" else f"{head}.dense")
    norm = {"bert": f"{head}.transform.LayerNorm", "albert": f"{head}.LayerNorm", "roberta": f"{head}.layer_norm"}
    wb("mlm_head.norm", norm[family])
    m["mlm_head.bias"] = f"{head}.bias"
    if cfg.sentence_head:
        if family == "albert":
            wb("sentence_head.pooler", f"{p}.pooler")
            wb("sentence_head.classifier", "sop_classifier.classifier")
        else:
            wb("sentence_head.pooler", f"{p}.pooler.dense")
            wb("sentence_head.classifier", "cls.seq_relationship")
    return m


_PROJECTION = "albert.encoder.embedding_hidden_mapping_in"
# which of a family's HF weights belong to which head: named when a checkpoint lacks them
HEADS = {
    "bert": {"MLM head": "cls.predictions.", "NSP head": "cls.seq_relationship.", "pooler": "bert.pooler."},
    "albert": {"MLM head": "predictions.", "SOP head": "sop_classifier.", "pooler": "albert.pooler."},
    "roberta": {"MLM head": "lm_head.", "pooler": "roberta.pooler."},
}


def head_of(family: str, hf_name: str) -> str | None:
    """'cls.predictions.bias' -> 'MLM head'; None for the encoder's own weights."""
    return next((head for head, prefix in HEADS[family].items() if hf_name.startswith(prefix)), None)


def config_from_hf(hf_config: Any, family: str, sentence_head: bool) -> ModelConfig:
    act = hf_config.hidden_act
    if act not in _ACT_FROM_HF:
        raise ValueError(f"hidden_act {act!r} is not supported; use one of {sorted(_ACT_FROM_HF)}")
    offset = hf_config.pad_token_id + 1 if family == "roberta" else 0
    fields = dict(
        vocab_size=hf_config.vocab_size,
        hidden_size=hf_config.hidden_size,
        num_layers=hf_config.num_hidden_layers,
        num_heads=hf_config.num_attention_heads,
        intermediate_size=hf_config.intermediate_size,
        max_position_embeddings=hf_config.max_position_embeddings - offset,
        position_offset=offset,
        type_vocab_size=hf_config.type_vocab_size,
        pad_token_id=hf_config.pad_token_id,
        activation=_ACT_FROM_HF[act],
        hidden_dropout=hf_config.hidden_dropout_prob,
        attention_dropout=hf_config.attention_probs_dropout_prob,
        layer_norm_eps=hf_config.layer_norm_eps,
        initializer_range=hf_config.initializer_range,
        sentence_head=sentence_head,
    )
    if family == "albert":
        if getattr(hf_config, "inner_group_num", 1) != 1:
            raise ValueError("ALBERT with inner_group_num != 1 has no equivalent here (ALBERT's released models use 1)")
        groups = hf_config.num_hidden_groups
        fields.update(embedding_size=hf_config.embedding_size, num_groups=groups,
                      sharing="none" if groups == hf_config.num_hidden_layers else "all")
    return ModelConfig(**fields)


def from_hf_bert(hf_model: Any) -> PretrainingModel:
    """Our PretrainingModel with the weights of an HF BERT/ALBERT/RoBERTa/ModernBERT model
    (BigBird's, which reads this module's BERT names, is `core.interop.convert.from_hf`'s).
    A model without the pretraining heads (e.g. BertForSequenceClassification after
    fine-tuning) is refused in one line naming them; `load_arm` reads such a directory whole."""
    if type(hf_model).__name__.startswith("ModernBert"):
        return from_hf_modernbert(hf_model)
    family = _family(hf_model)
    sentence_head = type(hf_model).__name__.endswith("ForPreTraining")
    cfg = config_from_hf(hf_model.config, family, sentence_head)
    model = PretrainingModel(cfg)
    theirs = hf_model.state_dict()
    names = _name_map(cfg, family)
    _check_heads(type(hf_model).__name__, family, [v for v in names.values() if v not in theirs])
    if family == "albert" and not cfg.factorized:
        _check_identity(theirs[_PROJECTION + ".weight"], theirs[_PROJECTION + ".bias"])
    ours = {k: theirs[v].detach().clone() for k, v in names.items()}
    missing, unexpected = model.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"from_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    return model


def _check_heads(cls: str, family: str, absent: list[str]) -> None:
    if not absent:
        return
    heads = sorted({head_of(family, n) or "encoder" for n in absent})
    raise ValueError(f"from_hf: {cls} has no {', '.join(heads)} ({absent[0]}, ...): load its save_pretrained "
                     "directory with load_arm, which initialises missing heads fresh and names them")


def _check_identity(weight: torch.Tensor, bias: torch.Tensor) -> None:
    """An E = H ALBERT converts exactly only if its E->H projection does nothing (as `to_hf` writes it)."""
    eye = torch.eye(weight.shape[0], dtype=weight.dtype, device=weight.device)
    if not (torch.equal(weight, eye) and not bias.any()):
        raise ValueError("ALBERT with embedding_size == hidden_size and an E->H projection that is not the identity "
                         "(trained in transformers?) has no equivalent here: this library's E = H models have no "
                         "projection; use embedding_size < hidden_size")


def export_problems(cfg: ModelConfig) -> list[str]:
    """Why HF transformers cannot hold this model ([] when it can): the reasons `export`
    prints when it falls back to the native format. A pre-norm model aims at ModernBERT's
    layout, a post-norm one at BERT's, ALBERT's or RoBERTa's."""
    if cfg.norm == "pre":
        return modernbert_problems(cfg)
    later = [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in
             (("positions", "learned"), ("ffn", "mlp"), ("norm_layer", "layernorm"), ("bias", True),
              ("norm_bias", True), ("global_every", 1)) if getattr(cfg, k) != v]
    problems = later + [f"{k}={getattr(cfg, k)!r} (needs {v!r})" for k, v in
                (("attention", "full"), ("norm", "post"), ("reversible", False)) if getattr(cfg, k) != v]
    if cfg.sharing not in ("none", "all"):
        problems.append(f"sharing={cfg.sharing!r} (HF's ALBERT only shares whole layers: 'all' or 'none')")
    if cfg.type_vocab_size == 0:
        problems.append("type_vocab_size=0 (HF models always carry token-type embeddings)")
    if hf_family(cfg) == "roberta" and (cfg.sentence_head or cfg.position_offset < cfg.pad_token_id + 1):
        problems.append("a RoBERTa layout (position_offset > 0) needs sentence_head=False and "
                        "position_offset >= pad_token_id + 1")
    return problems


def _hf_common(cfg: ModelConfig) -> dict[str, Any]:
    return dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
        hidden_act=_ACT_TO_HF[cfg.activation], hidden_dropout_prob=cfg.hidden_dropout,
        attention_probs_dropout_prob=cfg.attention_dropout, layer_norm_eps=cfg.layer_norm_eps,
        initializer_range=cfg.initializer_range, pad_token_id=cfg.pad_token_id, bos_token_id=CLS, eos_token_id=SEP,
        max_position_embeddings=cfg.max_position_embeddings + cfg.position_offset,
        type_vocab_size=cfg.type_vocab_size,
    )


def hf_family(cfg: ModelConfig) -> str:
    """The HF layout that holds this model: ModernBERT for pre-norm models, ALBERT for
    factorized or shared ones, RoBERTa for fairseq-style positions, BERT otherwise."""
    if cfg.norm == "pre":
        return "modernbert"
    if cfg.factorized or cfg.sharing == "all":
        return "albert"
    return "roberta" if cfg.position_offset else "bert"


def _hf_config_and_class(cfg: ModelConfig, family: str) -> tuple[Any, Any]:
    tf = require("transformers", FEATURE)
    common = _hf_common(cfg)
    common["max_position_embeddings"] -= dropped_position_rows(cfg, family)
    if family == "albert":
        hf_cfg = tf.AlbertConfig(embedding_size=cfg.embedding_size, num_hidden_groups=cfg.num_groups,
                                 inner_group_num=1, classifier_dropout_prob=0.0, **common)
        return hf_cfg, tf.AlbertForPreTraining if cfg.sentence_head else tf.AlbertForMaskedLM
    if family == "roberta":
        return tf.RobertaConfig(**common), tf.RobertaForMaskedLM
    return tf.BertConfig(**common), tf.BertForPreTraining if cfg.sentence_head else tf.BertForMaskedLM


def dropped_position_rows(cfg: ModelConfig, family: str) -> int:
    """Rows of our position table that the HF layout never reads, dropped from the export:
    HF RoBERTa numbers positions from pad_token_id + 1, HF ALBERT and BERT from 0, where
    ours start at `position_offset` (a factorized RoBERTa exports through ALBERT's layout)."""
    return cfg.position_offset - (cfg.pad_token_id + 1) if family == "roberta" else cfg.position_offset


def _load_into_hf(hf: Any, model: PretrainingModel, family: str) -> None:
    cfg, ours = model.cfg, model.state_dict()
    theirs = {v: ours[k].detach().clone() for k, v in _name_map(cfg, family).items()}
    pos = f"{family}.embeddings.position_embeddings.weight"
    theirs[pos] = theirs[pos][dropped_position_rows(cfg, family):]
    if family == "albert" and not cfg.factorized:  # HF's ALBERT always projects E -> H: here, doing nothing
        theirs[_PROJECTION + ".weight"] = torch.eye(cfg.hidden_size)
        theirs[_PROJECTION + ".bias"] = torch.zeros(cfg.hidden_size)
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    tied = {"decoder.weight", "decoder.bias"}
    missing = [k for k in missing if not any(k.endswith(t) for t in tied)]
    if missing or unexpected:
        raise RuntimeError(f"to_hf: weights not mapped: missing={missing} unexpected={unexpected}")
    hf.tie_weights()
    with torch.no_grad():  # the decoder shares the embedding table; its bias is ours
        hf.get_output_embeddings().bias.copy_(ours["mlm_head.bias"])


def to_hf(model: PretrainingModel) -> Any:
    """Export a model HF transformers can hold (`export_problems` says which cannot)."""
    problems = export_problems(model.cfg)
    if problems:
        raise ValueError("to_hf cannot export this model: " + "; ".join(problems))
    family = hf_family(model.cfg)
    if family == "modernbert":
        return to_hf_modernbert(model)
    hf_cfg, cls = _hf_config_and_class(model.cfg, family)
    hf = cls(hf_cfg)
    _load_into_hf(hf, model, family)
    return hf.eval()
