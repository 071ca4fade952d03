"""Export -> load in a fresh, offline process -> equal outputs and token ids; the native
format for arms HF cannot hold; warm starts that carry weights and extend positions."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.interop import choose_format, export_arm, load_arm, warm_start
from core.train import TrainConfig, Trainer
from tests import ROOT
from variants import build_model

pytest.importorskip("transformers")
HELD_OUT = ["Return the   number of items, rounded to ten digits.", "  leading and trailing spaces  ",
            "Ｆｕｌｌｗｉｄｔｈ letters, tabs\tand ½ fractions", "안전모를 쓴 한 남자가 춤을 추고 있다.", ""]

FRESH_HF = r"""
import json, sys, torch, transformers as tf
out = {}
for d in sys.argv[2:]:
    tok = tf.AutoTokenizer.from_pretrained(d)
    mlm, base = tf.AutoModelForMaskedLM.from_pretrained(d).eval(), tf.AutoModel.from_pretrained(d).eval()
    ids = torch.tensor(json.loads(sys.argv[1]))
    with torch.no_grad():
        logits, hidden = mlm(input_ids=ids).logits, base(input_ids=ids).last_hidden_state
    fill = tf.pipeline("fill-mask", model=d, top_k=3)(f"the {tok.mask_token} of")
    texts = json.load(open(d + "/held_out.json"))
    out[d] = {"logits": logits.tolist(), "hidden": hidden.tolist(), "ids": [tok(t)["input_ids"] for t in texts],
              "pair": tok(texts[0], texts[1])["input_ids"], "fast": tok.is_fast,
              "fill": [f["token"] for f in fill], "special": tok.convert_tokens_to_ids(
                  ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
print(json.dumps(out))
"""

FRESH_NATIVE = r"""
import json, sys, torch
from variants import load
ids = torch.tensor(json.loads(sys.argv[1]))
out = {}
for d in sys.argv[2:]:
    arm = load(d)
    with torch.no_grad(), arm.model.seeded_hashing(7):
        out[d] = {"format": arm.format, "logits": arm.model(ids).mlm_logits.tolist(),
                  "ids": arm.tokenizer.encode(["a held-out line"])[0]}
print(json.dumps(out))
"""


def fresh_process(script: str, ids: torch.Tensor, dirs: list[Path]) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(ids.tolist()), *map(str, dirs)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hf_export_loads_offline_with_equal_outputs_and_ids(small_data, tmp_path):
    tok = small_data.tokenizer
    arms = {"bert": build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64),
            "albert": build_model("albert", size="tiny", vocab_size=600, max_position_embeddings=64, embedding_size=64),
            "roberta": build_model("roberta", size="tiny", vocab_size=600, max_position_embeddings=64)}
    dirs = []
    for name, model in arms.items():
        result = export_arm(model, tok.path, tmp_path / name, "auto")
        assert result.format == "hf", result.reason
        (result.path / "held_out.json").write_text(json.dumps(HELD_OUT))
        dirs.append(result.path)
    ids = torch.randint(5, 600, (2, 19), generator=torch.Generator().manual_seed(0))
    theirs = fresh_process(FRESH_HF, ids, dirs)
    for (name, model), d in zip(arms.items(), dirs):
        got = theirs[str(d)]
        with torch.no_grad():
            out = model.eval()(ids)
        assert (torch.tensor(got["logits"]) - out.mlm_logits).abs().max() < 1e-4, name
        assert (torch.tensor(got["hidden"]) - out.hidden_states).abs().max() < 1e-4, name
        assert got["special"] == [0, 1, 2, 3, 4] and got["fast"]
        assert got["ids"] == [[2, *ids_, 3] for ids_ in tok.encode(HELD_OUT)], name
        a, b = tok.encode(HELD_OUT[:2])
        assert got["pair"] == [2, *a, 3, *b, 3] and len(got["fill"]) == 3
        again = load_arm(d)  # and back into this library
        with torch.no_grad():
            assert (again.model(ids).mlm_logits - out.mlm_logits).abs().max() < 1e-4


def test_native_format_round_trips_lsh_reversible_and_partial_sharing(small_data, tmp_path):
    arms = {"reformer": build_model("reformer", size="tiny", vocab_size=600, max_position_embeddings=64,
                                    lsh_bucket_size=8),
            "albert-reformer": build_model("albert-reformer", size="tiny", vocab_size=600, max_position_embeddings=64,
                                           lsh_bucket_size=8),
            "shared-attention": build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64,
                                            sharing="attention", num_groups=1)}
    dirs = []
    for name, model in arms.items():
        fmt, reason = choose_format(model, "auto")
        assert fmt == "native" and ("lsh" in reason or "sharing='attention'" in reason), reason
        with pytest.raises(ValueError, match="cannot be exported in HF format.*--format native"):
            choose_format(model, "hf")
        dirs.append(export_arm(model, small_data.tokenizer.path, tmp_path / name, "auto").path)
    ids = torch.randint(5, 600, (2, 40), generator=torch.Generator().manual_seed(1))
    theirs = fresh_process(FRESH_NATIVE, ids, dirs)
    for (name, model), d in zip(arms.items(), dirs):
        with torch.no_grad(), model.eval().seeded_hashing(7):
            ours = model(ids).mlm_logits
        assert theirs[str(d)]["format"] == "native"
        assert (torch.tensor(theirs[str(d)]["logits"]) - ours).abs().max() < 1e-5, name
        assert theirs[str(d)]["ids"] == small_data.tokenizer.encode(["a held-out line"])[0]


def test_export_refuses_to_replace_a_directory_that_is_not_an_export(small_data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files that no export of this project wrote"):
        export_arm(build_model("bert", size="tiny", vocab_size=600), small_data.tokenizer.path, tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no exported arm"):
        load_arm(tmp_path)


def test_warm_start_copies_weights_and_repeats_learned_positions(small_data, tmp_path):
    source = build_model("roberta", size="tiny", vocab_size=600, max_position_embeddings=64)
    export_arm(source, small_data.tokenizer.path, tmp_path / "src", "native")
    target = build_model("roberta-lsh", size="tiny", vocab_size=600, max_position_embeddings=160, lsh_bucket_size=16)
    report = warm_start(target, load_arm(tmp_path / "src").model)
    src, tgt = source.state_dict(), target.state_dict()
    for name in ("embeddings.word.weight", "encoder.attention.1.fn.value.weight", "encoder.ffn.0.fn.fn.fc1.weight",
                 "mlm_head.bias"):
        assert torch.equal(src[name], tgt[name]) and name in report.copied
    pos_src, pos_tgt = src["embeddings.position.weight"], tgt["embeddings.position.weight"]
    assert pos_tgt.shape[0] == 162 and torch.equal(pos_tgt[:2], pos_src[:2])  # RoBERTa's offset rows kept
    for i in (0, 63, 64, 130, 159):                                             # learned rows repeat every 64
        assert torch.equal(pos_tgt[2 + i], pos_src[2 + i % 64])
    # LSH's shared QK starts from the source's query projection (the Reformer's keys are its
    # normalised queries); the key projection has nowhere to go, and says so
    for layer in (0, 1):
        for p in ("weight", "bias"):
            qk = f"encoder.attention.{layer}.fn.qk.{p}"
            assert torch.equal(tgt[qk], src[f"encoder.attention.{layer}.fn.query.{p}"]) and qk in report.from_query
            assert f"encoder.attention.{layer}.fn.key.{p} (not in this model)" in report.not_carried
    assert not any(".fn.query." in n or ".fn.qk." in n for n in report.not_carried)
    line = report.line()
    assert "\n" not in line and "64 -> 162" not in line and "66 -> 162 rows" in line and "not carried over" in line
    assert "encoder.attention.*.fn.qk.weight (×2)" in line and "from the source's query projection" in line

    fresh = build_model("roberta-lsh", size="tiny", vocab_size=600, max_position_embeddings=160, lsh_bucket_size=16)
    trainer = Trainer(fresh, small_data, TrainConfig(max_steps=1, device="cpu", init_from=str(tmp_path / "src")),
                      progress_bar=False)
    assert trainer.warm_start() == line
    assert torch.equal(fresh.state_dict()["embeddings.word.weight"], src["embeddings.word.weight"])
