"""A transformers fast tokenizer built from one of our SentencePiece models, with equal ids.

transformers' own converter needs protobuf (not a dependency here), and its ALBERT/XLNet
sentencepiece classes lower-case, strip accents or shift ids; so the tokenizers pipeline is
assembled directly from the model file: SentencePiece's own normalisation table (read from
the serialized proto with a few lines of wire-format parsing), whitespace handling as
SentencePiece does it (strip, collapse runs, a "▁" before every word), the unigram pieces
with their scores, and [PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4 as special tokens.

`save_hf_tokenizer` names the class `PreTrainedTokenizerFast` in tokenizer_config.json:
transformers 5 writes `TokenizersBackend`, a class transformers 4 does not know, while
every version the `hf` extra allows loads `PreTrainedTokenizerFast` from tokenizer.json.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.data import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK
from core.extras import require
from core.files import atomic_write_text

FEATURE = "an HF tokenizer"
TOKENIZER_CLASS = "PreTrainedTokenizerFast"   # known to transformers 4.x and 5.x alike

_WORD_START = "\u2581"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _fields(buf: bytes) -> dict[int, list[bytes | int]]:
    """Top-level fields of a protobuf message: number -> values (bytes for length-delimited)."""
    out: dict[int, list[bytes | int]] = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in a SentencePiece model")
        out.setdefault(number, []).append(value)
    return out


def _normalizer_spec(model_bytes: bytes) -> tuple[bytes, bool, bool]:
    """(precompiled charsmap, add_dummy_prefix, remove_extra_whitespaces) of ModelProto field 3."""
    spec = _fields(model_bytes).get(3, [b""])[0]
    fields = _fields(spec) if isinstance(spec, bytes) else {}
    charsmap = fields.get(2, [b""])[0]
    dummy = bool(fields.get(3, [1])[0])
    collapse = bool(fields.get(4, [1])[0])
    return charsmap, dummy, collapse  # type: ignore[return-value]


def build_hf_tokenizer(sp_model_path: str | Path, type_ids: bool = True, model_max_length: int = 512) -> Any:
    """A `transformers.PreTrainedTokenizerFast` giving the same ids as `core.data`'s Tokenizer.

    Pairs are encoded as [CLS] a [SEP] b [SEP]; token types 0/1 when `type_ids`, all 0
    otherwise (RoBERTa-style models with one segment type)."""
    import sentencepiece as spm

    require("tokenizers", FEATURE), require("transformers", FEATURE)  # or one line naming the extra
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    path = Path(sp_model_path)
    sp = spm.SentencePieceProcessor(model_file=str(path))
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    vocab[PAD], vocab[UNK] = ("[PAD]", 0.0), ("[UNK]", vocab[UNK][1])
    tok = Tokenizer(models.Unigram(vocab, unk_id=UNK, byte_fallback=False))
    charsmap, dummy, collapse = _normalizer_spec(path.read_bytes())
    steps = [normalizers.Precompiled(charsmap)] if charsmap else []
    if collapse:
        steps += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_WORD_START, prepend_scheme="always" if dummy else "never")
    tok.decoder = decoders.Metaspace(replacement=_WORD_START, prepend_scheme="always" if dummy else "never")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    second = 1 if type_ids else 0
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair=f"[CLS]:0 $A:0 [SEP]:0 $B:{second} [SEP]:{second}",
        special_tokens=[("[CLS]", CLS), ("[SEP]", SEP)])
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if type_ids else [])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token=AddedToken("[MASK]", special=True, normalized=False), model_max_length=model_max_length,
        model_input_names=names)


def save_hf_tokenizer(tokenizer: Any, out: Path) -> None:
    """`tokenizer.save_pretrained(out)`, with a tokenizer class every allowed transformers knows."""
    tokenizer.save_pretrained(out)
    config = out / "tokenizer_config.json"
    body = json.loads(config.read_text(encoding="utf-8"))
    body["tokenizer_class"] = TOKENIZER_CLASS
    atomic_write_text(config, json.dumps(body, indent=2, ensure_ascii=False) + "\n")


__all__ = ["MASK", "TOKENIZER_CLASS", "build_hf_tokenizer", "save_hf_tokenizer"]
