"""Export trained arms and check them in a fresh, offline transformers process, in every
transformers version given.

    python benchmarks/export_roundtrip.py runs/papers bert albert roberta \
        --texts ../shared/data/korsts/sts-test.tsv --n 200 \
        --python /tmp/venv-tf4/bin/python --python /tmp/venv-tf457/bin/python --python .venv/bin/python

For each arm: `python -m ablations export RUN_DIR ARM --format auto` (with this
interpreter), then, in a new process of each `--python` (a venv with the project's base
dependencies and some transformers version; default: this one) with HF_HUB_OFFLINE=1,
AutoTokenizer / AutoModelForMaskedLM / AutoModel / pipeline("fill-mask") (HF format) or
`variants.load` (native format) on held-out lines that the arm's tokenizer never saw.
Prints, per version and arm: the format chosen, the largest |difference| of MLM logits and
of hidden states against our model, how many lines get identical token ids (special tokens
included), and whether the special-token ids transformers reads (the tokenizer's, and the
config's pad/bos/eos) are ours: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4. The exports
are written by the newest transformers and must load in the oldest the `hf` extra allows.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THEIRS = r"""
import json, os, sys, torch
from variants import load
texts, out = json.load(open(sys.argv[1])), {}
for d, ours_dir in zip(sys.argv[2::2], sys.argv[3::2]):
    ours = load(ours_dir).model.eval()
    ours_tok = load(ours_dir).tokenizer
    want = [[2, *x, 3] for x in ours_tok.encode(texts)]
    r = {"logits": 0.0, "hidden": None}
    if not os.path.exists(d + "/config.json"):  # the native format
        arm = load(d)
        r.update(format="native", ids=sum(x == y for x, y in zip(want, ([2, *x, 3] for x in arm.tokenizer.encode(texts)))))
        with torch.no_grad(), arm.model.eval().seeded_hashing(7), ours.seeded_hashing(7):
            for x in want:
                t = torch.tensor([x])
                r["logits"] = max(r["logits"], (arm.model(t).mlm_logits - ours(t).mlm_logits).abs().max().item())
        out[d] = r
        continue
    import transformers as tf
    tok = tf.AutoTokenizer.from_pretrained(d)
    mlm, base = tf.AutoModelForMaskedLM.from_pretrained(d).eval(), tf.AutoModel.from_pretrained(d).eval()
    got = [tok(t)["input_ids"] for t in texts]
    r.update(format="hf", ids=sum(x == y for x, y in zip(want, got)), hidden=0.0, tokenizer=type(tok).__name__,
             special=tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
             + [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id],
             config=[mlm.config.pad_token_id, mlm.config.bos_token_id, mlm.config.eos_token_id])
    with torch.no_grad():
        for x in want:
            t, o = torch.tensor([x]), ours(torch.tensor([x]))
            r["logits"] = max(r["logits"], (mlm(input_ids=t).logits - o.mlm_logits).abs().max().item())
            r["hidden"] = max(r["hidden"], (base(input_ids=t).last_hidden_state - o.hidden_states).abs().max().item())
    fill = tf.pipeline("fill-mask", model=d, top_k=3)(texts[0][:20] + tok.mask_token)
    r["fill"] = [f["token_str"] for f in fill]
    out[d] = r
try:
    import transformers
    version = transformers.__version__
except ImportError:
    version = "not installed"
print(json.dumps({"version": version, "arms": out}))
"""
OURS_SPECIAL = [0, 1, 2, 3, 4] * 2    # by token and by the tokenizer's own attributes
OURS_CONFIG = [0, 2, 3]               # pad, bos ([CLS]), eos ([SEP])


def held_out_lines(path: Path, n: int) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        lines += [c for c in line.split("\t") if " " in c.strip() and any(ch.isalpha() for ch in c)]  # sentences
    return lines[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("arms", nargs="+")
    p.add_argument("--texts", required=True, help="a UTF-8 TSV whose text columns are the held-out lines")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--python", action="append", help="an interpreter to load the exports with (repeatable; a venv "
                                                      "with another transformers version); default: this one")
    a = p.parse_args()
    texts = held_out_lines(Path(a.texts), a.n)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {}
        for arm in a.arms:
            out = Path(tmp) / arm.replace("/", "_")
            subprocess.run([sys.executable, "-m", "ablations", "export", a.run_dir, arm, "--out", str(out)],
                           check=True, cwd=ROOT)
            dirs[arm] = out
        (Path(tmp) / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        pairs = [str(x) for arm, d in dirs.items()
                 for x in (d, Path(a.run_dir) / "arms" / arm.replace("/", "_") / f"seed-{a.seed}")]
        failed = False
        for python in a.python or [sys.executable]:
            failed |= not check_in(python, Path(tmp) / "texts.json", pairs, dirs, len(texts))
        if failed:
            sys.exit(1)


def check_in(python: str, texts: Path, pairs: list[str], dirs: dict[str, Path], n: int) -> bool:
    """Load every export with `python`'s transformers; print one line per arm; False if any failed."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([python, "-c", THEIRS, str(texts), *pairs], capture_output=True, text=True, env=env)
    if proc.returncode:
        print(f"{python}: FAILED\n{proc.stderr[-3000:]}")
        return False
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    ok = True
    for arm, d in dirs.items():
        r = theirs["arms"][str(d)]
        ids_ok = r.get("special", OURS_SPECIAL) == OURS_SPECIAL and r.get("config", OURS_CONFIG) == OURS_CONFIG
        ok &= ids_ok and r["ids"] == n and r["logits"] < 1e-3
        print(f"transformers {theirs['version']}: {arm}: {r['format']} format"
              + (f" ({r['tokenizer']})" if "tokenizer" in r else "")
              + f"; token ids identical on {r['ids']} of {n} held-out lines; max |Δ MLM logits| {r['logits']:.2e}"
              + (f", max |Δ hidden states| {r['hidden']:.2e}" if r["hidden"] is not None else "")
              + (f"; special ids ours: {'yes' if ids_ok else 'NO ' + str(r['special']) + str(r['config'])}"
                 if "special" in r else "")
              + (f"; fill-mask top 3 for the first line's start+[MASK]: {r['fill']}" if "fill" in r else ""))
    return ok

if __name__ == "__main__":
    main()
