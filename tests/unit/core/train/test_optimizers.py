"""The optimizers (issue 35): AdamW, StableAdamW (torch-optimi), Muon and Adafactor (torch.optim).

Each resumes exactly after a SIGKILL (bf16 autocast, gradient accumulation and clipping on),
two ranks follow one process with the same global batch, the Muon split puts exactly the
encoder's matrices under Muon, every group trains at its own rate, and the row's optimizer
state bytes are what each optimizer keeps, counted from the shapes."""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.optim import (
    OPTIMIZERS,
    Optimizers,
    OptimizerSettings,
    build_optimizer,
    describe_groups,
    muon_split,
    optimizer_state_bytes,
)
from core.train import TrainConfig, Trainer
from tests import ROOT
from variants import get_config

DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=32, masking="dynamic")
STEPS, KILL_AT = 4, 2


@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA), corpus_file, cache_dir)


def model_for(variant="bert", **kw):
    torch.manual_seed(0)
    return PretrainingModel(get_config(variant, size="tiny", vocab_size=600, max_position_embeddings=64, **kw))


# -- the Muon split -------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, kw", [("bert", {"embedding_size": 64}), ("modernbert", {}),
                                         ("albert-reformer", {"lsh_bucket_size": 16})])
def test_muon_takes_the_encoders_matrices_and_adamw_the_rest(variant, kw):
    model = model_for(variant, **kw)
    named = dict(model.named_parameters())
    muon, rest = muon_split(model.named_parameters())
    # the rule, by name: the encoder's 2-D weights, and nothing else
    assert set(muon) == {n for n, p in named.items() if n.startswith("encoder.") and p.ndim == 2}
    assert set(muon) | set(rest) == set(named) and not set(muon) & set(rest)
    assert all(n.endswith(".weight") and ".norm" not in n for n in muon)
    assert any(".fn.query." in n or ".fn.qk." in n for n in muon) and any(".fc1." in n for n in muon)
    for name in rest:  # embeddings, heads, norms and biases
        assert not name.startswith("encoder.") or named[name].ndim == 1, name
    assert "embeddings.word.weight" in rest and "mlm_head.dense.weight" in rest and "mlm_head.bias" in rest
    if kw.get("embedding_size"):
        assert "embeddings.project.weight" in rest  # the factorized projection belongs to the embeddings
    if model.sentence_head is not None:
        assert "sentence_head.pooler.weight" in rest

    opt = build_optimizer(model, OptimizerSettings(optimizer="muon", lr=1e-3, muon_lr_ratio=4.0, weight_decay=0.02))
    assert isinstance(opt, Optimizers) and set(opt.parts) == {"muon", "adamw"}
    ids = {id(named[n]) for n in muon}
    assert {id(p) for g in opt.parts["muon"].param_groups for p in g["params"]} == ids
    adamw_ids = {id(p) for g in opt.parts["adamw"].param_groups for p in g["params"]}
    assert adamw_ids == {id(p) for p in model.parameters()} - ids  # each parameter (a shared one once) in one part
    groups = describe_groups(opt, 1e-3)
    assert groups["muon"]["params"] == sum(named[n].numel() for n in muon)
    assert groups["muon"]["lr"] == pytest.approx(4e-3) and groups["decay"]["lr"] == groups["no_decay"]["lr"] == 1e-3
    # decoupled decay per step, lr x wd, is the same in every group whatever its rate
    assert groups["muon"]["weight_decay"] * 4 == pytest.approx(0.02) and groups["decay"]["weight_decay"] == 0.02
    assert groups["no_decay"]["weight_decay"] == 0.0


def test_every_group_trains_at_its_own_scale_of_the_scheduled_rate(data):
    seen = []
    cfg = TrainConfig(batch_size=8, max_steps=3, optimizer="muon", muon_lr_ratio=3.0, lr=1e-3, warmup=0.5)
    trainer = Trainer(model_for(), data, cfg, progress_bar=False,
                      on_step=lambda t: seen.append({g["name"]: g["lr"] for g in t.optimizer.param_groups}))
    trainer.train()
    from core.optim import warmup_linear_decay

    for step, rates in enumerate(seen):
        factor = warmup_linear_decay(step / 3, 0.5)
        assert rates == pytest.approx({"muon": 3e-3 * factor, "decay": 1e-3 * factor, "no_decay": 1e-3 * factor})


# -- the state an optimizer keeps -----------------------------------------------------------------------
def _one_step(name: str, model) -> object:
    opt = build_optimizer(model, OptimizerSettings(optimizer=name, lr=1e-3))
    ids = torch.randint(5, 600, (2, 32))
    model(ids, attention_mask=torch.ones_like(ids), mlm_labels=ids, sentence_labels=torch.tensor([0, 1])).loss.backward()
    opt.step()
    return opt


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_state_bytes_are_what_each_optimizer_keeps(name):
    model = model_for()
    params = list({id(p): p for p in model.parameters()}.values())
    n = sum(p.numel() for p in params)
    assert optimizer_state_bytes(build_optimizer(model, OptimizerSettings(optimizer=name))) == 0  # none before a step
    got = optimizer_state_bytes(_one_step(name, model))
    muon = {id(p) for n_, p in model.named_parameters() if n_ in set(muon_split(model.named_parameters())[0])}
    if name == "adamw":  # two fp32 moments and a step count per tensor
        expected = 8 * n + 4 * len(params)
    elif name == "stable_adamw":  # two moments and eps^2 per tensor, one step count per group
        expected = 8 * n + 4 * len(params) + 4 * 2
    elif name == "muon":  # one momentum on the matrices; AdamW's two moments and step on the rest
        rest = [p for p in params if id(p) not in muon]
        expected = 4 * sum(p.numel() for p in params if id(p) in muon) + 8 * sum(p.numel() for p in rest) + 4 * len(rest)
    else:  # adafactor: a row and a column of second moments per matrix, a full one per vector, a step count
        expected = sum(4 * (p.shape[0] + p.shape[1]) if p.ndim == 2 else 4 * p.numel() for p in params) + 4 * len(params)
    assert got == expected
    if name == "adafactor":
        assert got < 0.05 * 8 * n  # factored moments: a few percent of AdamW's state at this size


# -- resume after SIGKILL ---------------------------------------------------------------------------------
SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import torch
    from core.data import DataConfig, build_dataset
    from core.model import PretrainingModel
    from core.train import TrainConfig, Trainer
    from variants import get_config

    name, out, corpus, cache = sys.argv[1:5]
    data = build_dataset(DataConfig(**{data}), corpus, cache)
    torch.manual_seed(0)
    model = PretrainingModel(get_config("bert", size="tiny", vocab_size=600, max_position_embeddings=64))

    def kill(trainer):
        if trainer.progress.step == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: the checkpoint on disk is all there is

    Trainer(model, data, TrainConfig(optimizer=name, **{cfg}), out, progress_bar=False, on_step=kill).train()
''')
CFG = dict(batch_size=4, grad_accum=2, max_steps=STEPS, lr=2e-3, clip_norm=0.5, precision="bf16", log_every=1,
           checkpoint_every=1, device="cpu")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_resumes_exactly_after_sigkill(name, data, tmp_path, corpus_file, cache_dir):
    script = tmp_path / "killed.py"
    script.write_text(SCRIPT.format(data=DATA, kill_at=KILL_AT, cfg=CFG))
    out = tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, str(script), name, str(out), str(corpus_file), str(cache_dir)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["progress"]["step"] == KILL_AT and state["optimizer"]  # its state is in the checkpoint
    torch.manual_seed(999)  # a fresh process: the model's weights come from the checkpoint
    resumed = Trainer(model_for(), data, TrainConfig(optimizer=name, **CFG), out, progress_bar=False).train()
    full = Trainer(model_for(), data, TrainConfig(optimizer=name, **CFG), tmp_path / "full", progress_bar=False).train()
    assert resumed.resume == {"kind": "resumed", "from_step": KILL_AT}
    assert resumed.train_loss == full.train_loss  # exact, every step after the kill included
    assert resumed.final_eval == full.final_eval


def test_a_checkpoint_of_another_optimizer_is_never_continued(data, tmp_path):
    cfg = dict(batch_size=8, max_steps=2, log_every=1)
    Trainer(model_for(), data, TrainConfig(**cfg), tmp_path, progress_bar=False).train()
    again = Trainer(model_for(), data, TrainConfig(optimizer="adafactor", **cfg), tmp_path, progress_bar=False).train()
    assert again.resume["kind"] == "restarted"
    assert "train.optimizer None -> 'adafactor'" in again.resume["reason"]


def test_the_default_recipe_leaves_the_identity_as_it_was():
    """New fields at their defaults stay out of a checkpoint's identity and a row's key
    (core.train.checkpoint.LATER_DEFAULTS), so finished runs are found again."""
    from core.train.checkpoint import LATER_DEFAULTS

    defaults = TrainConfig(max_steps=1)
    for name in ("optimizer", "muon_lr_ratio", "muon_adjust_lr", "adafactor_lr_ratio", "batch_size_warmup",
                 "batch_size_warmup_start", "batch_size_warmup_by"):
        assert LATER_DEFAULTS[name] == getattr(defaults, name), name


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "sgd"}, "optimizer"), ({"muon_lr_ratio": 0}, "muon_lr_ratio must be a finite number > 0"),
    ({"muon_adjust_lr": "x"}, "muon_adjust_lr"), ({"adafactor_lr_ratio": float("inf")}, "adafactor_lr_ratio"),
])
def test_a_bad_optimizer_setting_is_one_line(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(max_steps=1, **bad)


# -- two ranks ---------------------------------------------------------------------------------------------
DDP_STEPS = 4
DDP_RUNS = {**{name: {"optimizer": name} for name in OPTIMIZERS},
            "ramp": {"batch_size_warmup": 0.5, "batch_size_warmup_start": 0.5},
            "mask_schedule": {}}


def _ddp_train(data, name: str, grad_accum: int):
    torch.manual_seed(0)
    model = PretrainingModel(get_config("bert", size="tiny", vocab_size=600, max_position_embeddings=64,
                                        hidden_dropout=0.0, attention_dropout=0.0))
    cfg = TrainConfig(batch_size=4, grad_accum=grad_accum, max_steps=DDP_STEPS, lr=2e-3, warmup=0.0, log_every=1,
                      device="cpu", **DDP_RUNS[name])
    return Trainer(model, data, cfg, progress_bar=False).train().train_loss


def _ddp_data(corpus: str, cache: str, name: str):
    cfg = DataConfig(**DATA, mask_prob=0.3, mask_prob_end=0.1) if name == "mask_schedule" else DataConfig(**DATA)
    return build_dataset(cfg, corpus, cache)


def _rank_main(rank: int, store: str, corpus: str, cache: str, results) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", store=dist.FileStore(store, 2), rank=rank, world_size=2)
    try:
        results.put((rank, {name: _ddp_train(_ddp_data(corpus, cache, name), name, 1) for name in DDP_RUNS}))
    except Exception as err:  # noqa: BLE001 - the parent reports it
        results.put((rank, repr(err)))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(corpus_file, cache_dir, tmp_path_factory):
    for name in ("adamw", "mask_schedule"):
        _ddp_data(str(corpus_file), str(cache_dir), name)  # cached once, before the ranks read it
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    store = tempfile.mktemp(dir=tmp_path_factory.mktemp("dist"))
    procs = [ctx.Process(target=_rank_main, args=(r, store, str(corpus_file), str(cache_dir), results))
             for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    for rank, value in got.items():
        assert isinstance(value, dict), f"rank {rank} failed: {value}"
    return got


@pytest.mark.parametrize("name", list(DDP_RUNS))
def test_two_ranks_follow_one_process_with_the_same_global_batch(two_ranks, corpus_file, cache_dir, name):
    one = _ddp_train(_ddp_data(str(corpus_file), str(cache_dir), name), name, 2)  # 4 x 2 micro-batches = 2 ranks x 4
    got = two_ranks[0][name]
    assert got == two_ranks[1][name]  # every rank logs the global numbers
    assert len(got) == len(one) == DDP_STEPS
    for a, b in zip(got, one, strict=True):
        assert a[0] == b[0]  # global tokens, exactly: the same examples
        # Muon orthogonalises in bf16, so the ranks' all-reduced mean (rounded otherwise than one
        # process's accumulated sum) can flip a bf16 rounding
        assert a[1:] == pytest.approx(b[1:], abs=1e-4 if name == "muon" else 1e-5)
