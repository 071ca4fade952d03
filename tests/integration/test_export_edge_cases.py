"""Export and load where it used to go wrong: a user's directories beside --out, a base
install without transformers, special-token ids and tokenizer class that older
transformers read, directories saved by save_pretrained after fine-tuning, and ALBERT at
E = H (the --quick size)."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import core.interop.export as export_mod
from ablations.__main__ import main as cli
from core.data import CLS, PAD, SEP
from core.interop import check_loadable, choose_format, export_arm, from_hf, load_arm, to_hf
from core.interop.hf_tokenizer import TOKENIZER_CLASS, build_hf_tokenizer
from core.interop.staging import STAGING
from tests import ROOT
from tests.unit.core.finetune.test_pair_tasks import keyword_task
from variants import build_model, load

TINY = dict(size="tiny", vocab_size=600, max_position_embeddings=64)
NO_TRANSFORMERS = 'needs the transformers package: pip install -e ".[hf]"'


def ids(seed: int = 0) -> torch.Tensor:
    return torch.randint(5, 600, (2, 19), generator=torch.Generator().manual_seed(seed))


# -- finding 8: nothing beside --out is removed but what the export itself made ---------------------------
def test_export_never_removes_a_users_directory_beside_out(small_data, tmp_path):
    mine = {name: tmp_path / name for name in (".bert.export", ".bert.replaced", ".bert.export-mine",
                                               ".bert.replaced-x", ".bert.export.tmp-1")}
    for d in mine.values():
        d.mkdir()
        (d / "notes.txt").write_text("mine")
    model = build_model("bert", **TINY)
    for fmt in ("native", "native", "auto"):  # new, then replacing an earlier export twice
        export_arm(model, small_data.tokenizer.path, tmp_path / "bert", fmt)
    assert all((d / "notes.txt").read_text() == "mine" for d in mine.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, "bert"])  # no staging left behind
    assert not (tmp_path / "bert" / STAGING).exists()
    assert STAGING not in json.loads((tmp_path / "bert" / "bert_ablate.json").read_text())["files"]


def test_a_killed_exports_leftover_goes_a_live_ones_stays(small_data, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = __import__("socket").gethostname()
    for name, pid in ((".bert.export-dead", int(dead.stdout)), (".bert.export-live", os.getpid())):
        (tmp_path / name).mkdir()
        (tmp_path / name / STAGING).write_text(json.dumps({"host": host, "pid": pid}))
    export_arm(build_model("bert", **TINY), small_data.tokenizer.path, tmp_path / "bert", "native")
    assert not (tmp_path / ".bert.export-dead").exists() and (tmp_path / ".bert.export-live").is_dir()


def test_a_failed_export_leaves_the_earlier_one_and_no_staging(small_data, tmp_path, monkeypatch):
    model = build_model("bert", **TINY)
    export_arm(model, small_data.tokenizer.path, tmp_path / "bert", "native")
    before = (tmp_path / "bert" / "model.safetensors").read_bytes()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(export_mod, "save_native", crash)
    with pytest.raises(OSError, match="disk full"):
        export_arm(build_model("bert", **TINY), small_data.tokenizer.path, tmp_path / "bert", "native")
    assert [p.name for p in tmp_path.iterdir()] == ["bert"]
    assert (tmp_path / "bert" / "model.safetensors").read_bytes() == before


# -- finding 13 and item 3: the base install, without transformers ----------------------------------------
@pytest.fixture
def no_hf(monkeypatch):
    """transformers, tokenizers and accelerate as a base install has them: absent."""
    for name in ("transformers", "tokenizers", "accelerate"):
        monkeypatch.setitem(sys.modules, name, None)


def test_without_transformers_auto_exports_native_and_hf_fails_before_writing(small_data, tmp_path, no_hf):
    model = build_model("bert", **TINY)
    assert choose_format(model, "auto") == (
        "native", "transformers is not installed (pip install -e '.[hf]' for the HF format)")
    result = export_arm(model, small_data.tokenizer.path, tmp_path / "auto")
    assert result.format == "native" and "transformers is not installed" in result.reason
    assert load_arm(tmp_path / "auto").format == "native"  # the base install reads it back
    with pytest.raises(ValueError) as err:
        export_arm(model, small_data.tokenizer.path, tmp_path / "hf", "hf")
    assert str(err.value) == f"exporting in the HF format (--format hf) {NO_TRANSFORMERS}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auto"]  # nothing written for the failed one
    for convert in (lambda: to_hf(model), lambda: build_hf_tokenizer(small_data.tokenizer.path)):
        with pytest.raises(ValueError, match=r"needs the (transformers|tokenizers) package: pip install -e \"\.\[hf\]\"$"):
            convert()


def test_without_transformers_an_hf_directory_fails_in_one_line(small_data, tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    export_arm(build_model("bert", **TINY), small_data.tokenizer.path, tmp_path / "exp" / "bert", "hf")
    task = f"tsv:{keyword_task(tmp_path / 'task', sizes=(20, 10, 10))}:text_a=s1,text_b=s2,label=y"
    for name in ("transformers", "tokenizers", "accelerate"):
        monkeypatch.setitem(sys.modules, name, None)
    want = f"loading {tmp_path / 'exp' / 'bert'} (an HF-format arm) {NO_TRANSFORMERS}"
    with pytest.raises(ValueError) as err:
        load(tmp_path / "exp" / "bert")
    assert str(err.value) == want
    assert cli(["finetune", str(tmp_path / "exp"), "bert", "--task", task, "--steps", "2", "--seeds", "1"]) == 2
    assert " ".join(capsys.readouterr().err.split()) == f"error: {want}"
    with pytest.raises(ValueError, match=r"^init_from .* \(an HF-format arm\) needs the transformers package"):
        check_loadable(tmp_path / "exp" / "bert", f"init_from {tmp_path / 'exp' / 'bert'} (an HF-format arm)")
    from ablations.run.weights import resolve_source

    with pytest.raises(ValueError, match=r"^init_from .* needs the transformers package: pip install"):
        resolve_source(str(tmp_path / "exp" / "bert"))


def test_the_base_install_exports_and_finetunes_native_arms_in_a_fresh_process(small_data, tmp_path):
    """A process where transformers, tokenizers and accelerate cannot be imported at all."""
    script = r"""
import sys, importlib.abc
class NoHF(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("transformers", "tokenizers", "accelerate"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoHF())
from core.interop import export_arm, load_arm
from core.finetune import FinetuneConfig, finetune, load_task
from variants import build_model
r = export_arm(build_model("bert", size="tiny", vocab_size=600, max_position_embeddings=64), sys.argv[1], sys.argv[2])
arm = load_arm(sys.argv[2])
res = finetune(arm.model, arm.tokenizer, load_task(sys.argv[3]), FinetuneConfig(max_steps=2, device="cpu"))
print(r.format, "|", r.reason, "|", res.test.n, "|", "transformers" in sys.modules and sys.modules["transformers"])
"""
    task = f"tsv:{keyword_task(tmp_path / 'task', sizes=(20, 10, 10))}:text_a=s1,text_b=s2,label=y"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script, str(small_data.tokenizer.path), str(tmp_path / "out"), task],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == \
        "native | transformers is not installed (pip install -e '.[hf]' for the HF format) | 10 | False"


# -- finding 16: ids and classes that every allowed transformers reads as ours -----------------------------
@pytest.mark.parametrize("variant,extra", [("bert", {}), ("albert", {"embedding_size": 64}), ("roberta", {}),
                                           ("albert", {})])
def test_exported_config_names_our_special_ids_and_a_tokenizer_class_4x_knows(small_data, tmp_path, variant, extra):
    """transformers 4.40-4.57 fail on tokenizer_class TokenizersBackend (5.x's name), and
    RobertaConfig's defaults (bos 0, eos 2) are [PAD] and [CLS] here; the cross-version
    load itself: benchmarks/export_roundtrip.py --python."""
    pytest.importorskip("transformers")
    out = export_arm(build_model(variant, **TINY, **extra), small_data.tokenizer.path, tmp_path / variant, "hf").path
    config = json.loads((out / "config.json").read_text())
    token_ids = {k: v for k, v in config.items() if k.endswith("_token_id")}
    assert token_ids == {"pad_token_id": PAD, "bos_token_id": CLS, "eos_token_id": SEP}, variant
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == TOKENIZER_CLASS \
        == "PreTrainedTokenizerFast"


# -- finding 18: directories saved by save_pretrained after fine-tuning -----------------------------------
@pytest.mark.parametrize("variant,extra,heads", [
    ("bert", {}, "MLM head, NSP head"), ("albert", {"embedding_size": 64}, "MLM head, SOP head"),
    ("roberta", {}, "MLM head")])
def test_a_save_pretrained_classifier_loads_its_encoder_exactly(small_data, tmp_path, variant, extra, heads):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = build_model(variant, **TINY, **extra).eval()
    exported = export_arm(ours, small_data.tokenizer.path, tmp_path / "exp", "hf").path
    clf = tf.AutoModelForSequenceClassification.from_pretrained(exported, num_labels=3)
    saved = tmp_path / "fine-tuned"
    clf.save_pretrained(saved)  # what a Trainer leaves: config.json + model.safetensors
    with pytest.raises(FileNotFoundError, match="sentencepiece.model is missing.*copy it from the exported arm"):
        load_arm(saved)
    (saved / "sentencepiece.model").write_bytes((exported / "sentencepiece.model").read_bytes())
    with pytest.warns(UserWarning, match=f"has no {heads}: its encoder is loaded exactly"):
        again = load(saved)
    assert "\n" not in again.note and f"({type(clf).__name__}) has no {heads}" in again.note
    with torch.no_grad():
        want, got = ours(ids()).hidden_states, again.model.eval()(ids()).hidden_states
    assert (want - got).abs().max() < 1e-6
    with pytest.raises(ValueError, match=rf"^from_hf: {type(clf).__name__} has no .*MLM head.* load_arm"):
        from_hf(clf)


def test_a_save_pretrained_base_model_loads_and_the_cli_finetunes_it(small_data, tmp_path, capsys):
    tf = pytest.importorskip("transformers")
    ours = build_model("bert", **TINY).eval()
    exported = export_arm(ours, small_data.tokenizer.path, tmp_path / "exp", "hf").path
    base = tmp_path / "runs" / "encoder"
    tf.AutoModel.from_pretrained(exported).save_pretrained(base)  # BertModel: no "bert." prefix, a pooler
    (base / "sentencepiece.model").write_bytes((exported / "sentencepiece.model").read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = load_arm(base)
        task = f"tsv:{keyword_task(tmp_path / 'task', sizes=(20, 10, 10))}:text_a=s1,text_b=s2,label=y"
        assert cli(["finetune", str(tmp_path / "runs"), "encoder", "--task", task, "--steps", "2", "--seeds", "1",
                    "--json"]) == 0
    assert again.model.cfg.sentence_head and "has no MLM head, NSP head" in again.note
    with torch.no_grad():
        assert (ours(ids()).hidden_states - again.model.eval()(ids()).hidden_states).abs().max() < 1e-6
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 10


# -- finding 19: ALBERT at E = H, and factorized RoBERTa, in ALBERT's HF layout ---------------------------
@pytest.mark.parametrize("variant,extra", [("albert", {}), ("roberta", {"embedding_size": 64}),
                                           ("roberta", {"embedding_size": 64, "sharing": "all"})])
def test_albert_layout_holds_e_equal_h_and_roberta_positions_exactly(small_data, tmp_path, variant, extra):
    """--quick's ALBERT (E = H = 128, all layers shared) was refused as unfactorized; HF's
    ALBERT always projects E -> H, so ours exports with the identity there. A factorized
    RoBERTa's offset positions went out unshifted (logits off by ~0.6)."""
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = build_model(variant, **TINY, **extra).eval()
    assert choose_format(ours, "auto")[0] == "hf"
    out = export_arm(ours, small_data.tokenizer.path, tmp_path / "a", "hf").path
    assert json.loads((out / "config.json").read_text())["architectures"][0].startswith("Albert")
    again = load_arm(out).model
    hf = to_hf(ours)
    with torch.no_grad():
        want = ours(ids()).mlm_logits
        theirs = hf(input_ids=ids())
        assert ((theirs.prediction_logits if ours.cfg.sentence_head else theirs.logits) - want).abs().max() < 1e-4
        assert (again(ids()).mlm_logits - want).abs().max() < 1e-5


def test_an_albert_whose_identity_projection_was_trained_is_refused_in_one_line():
    pytest.importorskip("transformers")
    hf = to_hf(build_model("albert", **TINY))
    with torch.no_grad():
        hf.albert.encoder.embedding_hidden_mapping_in.bias.add_(0.01)
    with pytest.raises(ValueError, match="embedding_size == hidden_size and an E->H projection that is not the "
                                         "identity .* use embedding_size < hidden_size$"):
        from_hf(hf)


def test_the_banner_says_what_was_built_at_this_size(corpus_file):
    """--quick's tiny size has H = 128: ALBERT's "factorized E=128" is E = H there."""
    from ablations.config import RunConfig
    from ablations.plan import make_plan
    from ablations.specs import get_ablation

    quick = make_plan(get_ablation("papers"), RunConfig(quick=True, corpus=str(corpus_file)))
    banners = {u.arm.name: u.banner for u in quick.units}
    assert banners["albert"] == ("[2/5] albert: ALBERT: factorized E=128, all layers shared, SOP, n-gram masking "
                                 "(at this size E = H = 128: not factorized)")
    assert banners["bert"] == "[1/5] bert: BERT: NSP, static token masking, separate embeddings and layers"
    mini = make_plan(get_ablation("papers"), RunConfig(size="mini", corpus=str(corpus_file)))
    assert "not factorized" not in next(u.banner for u in mini.units if u.arm.name == "albert")
    sharing = make_plan(get_ablation("sharing"), RunConfig(size="micro", corpus=str(corpus_file)))
    assert next(u.banner for u in sharing.units if u.arm.name == "all/L").endswith(
        "share all across layers in L group(s) (at this size E = H = 128: not factorized; 4 groups for 4 layers: "
        "nothing is shared)")
