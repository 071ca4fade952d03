"""The mixed-precision path on a CPU: `precision="bf16"` runs bf16 autocast there, so the
dtype bugs that would first meet a user on a GPU (an fp32 buffer meeting a bf16
activation, an index_put with mixed dtypes, a loss taken in bf16) show here.

For every named variant, padded and unpadded: one training step through the Trainer
(its loss against fp32's, every gradient finite, the master weights fp32 after the
update), the held-out evaluation after it, the fine-tuning heads and the FLOP counter.

Tolerance: bf16 keeps 8 significant bits (a relative rounding of 2^-9 = 0.2% per
product). At init the loss is about ln(V) = 6.4 and rounding errors of a few layers
mostly cancel in the mean over tokens; 2e-2 relative (about 0.13 nats here) is ten
times what we measured across the variants (see `test_a_training_step_in_bf16...`), and
a real dtype bug (a mask summed in bf16, a head in bf16 against fp32 labels) moves the
loss by far more or makes it non-finite."""
import math
from pathlib import Path

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.device import PRECISIONS, autocast, resolved_precision
from core.finetune import FinetuneConfig, TaskModel, finetune
from core.finetune.encode import batches, encode_examples
from core.finetune.tasks import Example, Task, TaskSpec
from core.measure import measured_flops
from core.model import PretrainingModel
from core.train import TrainConfig, Trainer
from variants import get_config, get_variant, list_variants

DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=16)
REL = 2e-2
HASH_SEED = 7


@pytest.fixture(scope="module")
def datasets(corpus_file, cache_dir):
    """Each variant's own data (packing, sentence task, masking): built once per kind."""
    built: dict = {}

    def get(variant: str):
        cfg = DataConfig(**DATA, **get_variant(variant).data)
        if cfg not in built:
            built[cfg] = build_dataset(cfg, corpus_file, cache_dir)
        return built[cfg]
    return get


def model_for(variant: str) -> PretrainingModel:
    torch.manual_seed(0)
    extra = {"lsh_bucket_size": 8} if "reformer" in variant or "lsh" in variant else {}
    return PretrainingModel(get_config(variant, size="tiny", vocab_size=600, max_position_embeddings=64,
                                       hidden_dropout=0.0, attention_dropout=0.0, **extra))


def one_step(variant: str, data, precision: str, unpad: bool) -> dict:
    """One optimizer step and the evaluation after it; the gradients and weights as the step left them."""
    model = model_for(variant)
    seen = {}

    def grab(trainer):
        seen["grads"] = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        seen["dtypes"] = {n: p.dtype for n, p in model.named_parameters()}
        seen["state_dtypes"] = {v.dtype for s in trainer.optimizer.state.values() for v in s.values()
                                if torch.is_tensor(v) and v.is_floating_point()}

    cfg = TrainConfig(batch_size=4, max_steps=1, lr=1e-3, warmup=0.0, log_every=1, eval_batch_size=8,
                      device="cpu", precision=precision, unpad=unpad)
    with model.seeded_hashing(HASH_SEED):
        result = Trainer(model, data, cfg, progress_bar=False, on_step=grab).train()
    return {"result": result, **seen}


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


# LSH attention does not pack (core.model.unpad): its variants always run padded
CASES = [(v, unpad) for v in list_variants() for unpad in (False, True)
         if not (unpad and get_config(v).attention == "lsh")]


@pytest.mark.parametrize("variant, unpad", CASES, ids=[f"{v}-{'unpadded' if u else 'padded'}" for v, u in CASES])
def test_a_training_step_in_bf16_matches_fp32(datasets, variant, unpad):
    data = datasets(variant)
    assert not data.train_batch(4, 0)["attention_mask"].all()  # the step's batch has padding to skip
    fp32, bf16 = one_step(variant, data, "fp32", unpad), one_step(variant, data, "bf16", unpad)
    for run in (fp32, bf16):
        assert run["result"].status == "ok", run["result"].error
    loss32, loss16 = fp32["result"].train_loss[0][1], bf16["result"].train_loss[0][1]
    assert loss16 == pytest.approx(loss32, rel=REL)
    assert set(bf16["grads"]) == set(fp32["grads"])  # every parameter fp32 trains, bf16 trains
    for name, g in bf16["grads"].items():
        assert g.dtype == torch.float32 and torch.isfinite(g).all(), name
    whole = cosine(torch.cat([g.flatten() for g in bf16["grads"].values()]),
                   torch.cat([fp32["grads"][n].flatten() for n in bf16["grads"]]))
    assert whole > 0.99  # the same descent direction, to bf16's rounding
    assert set(bf16["dtypes"].values()) == {torch.float32}  # master weights stay fp32
    assert bf16["state_dtypes"] == {torch.float32}  # and so do AdamW's moments
    e32, e16 = fp32["result"].final_eval, bf16["result"].final_eval
    assert e16["eval_mlm_loss"] == pytest.approx(e32["eval_mlm_loss"], rel=REL)
    if e32.get("eval_nsp_acc") is not None:  # the sentence head, on both held-out pair sets
        assert e16["eval_nsp_n"] == e32["eval_nsp_n"] > 0 and e16["eval_sop_n"] == e32["eval_sop_n"] > 0


@pytest.mark.parametrize("variant", ["reformer", "albert-reformer"])
def test_the_reversible_backward_recomputes_in_the_forwards_precision(variant):
    """reformer-pytorch recomputes each layer inside backward, outside the forward's
    autocast: without `_Branch` restoring it, the recomputation ran in fp32 and the
    gradients differed from the two-stream path's by 2.7% (reformer) and 4.4%
    (albert-reformer) of their norm; restored, by 5e-9 and 1.5e-4."""
    model = model_for(variant)
    phase, dtypes = ["forward"], {"forward": set(), "backward": set()}
    for module in model.encoder.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(lambda m, i, out: dtypes[phase[0]].add(out.dtype))
    batch = padded_batch(model.cfg)
    grads = {}
    for path in ("reversible", "two-stream"):
        model.zero_grad()
        model.encoder.force_irreversible = path == "two-stream"
        with model.seeded_hashing(HASH_SEED):
            with autocast(torch.device("cpu"), "bf16"):
                loss = model(**batch).loss
            phase[0] = "backward"
            loss.backward()
            phase[0] = "forward"
        grads[path] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        if path == "reversible":
            assert dtypes == {"forward": {torch.bfloat16}, "backward": {torch.bfloat16}}
    diff = float((grads["reversible"] - grads["two-stream"]).norm() / grads["two-stream"].norm())
    assert diff < 1e-3


def padded_batch(cfg, batch: int = 4, length: int = 48) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, cfg.vocab_size, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 30:] = mask[3, 17:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 1::6] = ids[:, 1::6]
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "mlm_labels": labels}
    if cfg.sentence_head:
        out["sentence_labels"] = torch.tensor([0, 1] * (batch // 2))
    return out


def pair_task(regression: bool) -> Task:
    words = "the of and to in is for that with as on by module function".split()
    rows = [Example(" ".join(words[i % 7:i % 7 + 4]), " ".join(words[i % 3:i % 3 + 2 + i % 6]),  # lengths vary
                    float(i % 5) if regression else i % 2) for i in range(24)]
    kind = "pair-regression" if regression else "pair-classification"
    spec = TaskSpec("pairs", Path("pairs"), kind, "a", "b", "y")
    return Task(spec, {"train": rows[:16], "dev": rows[16:20], "test": rows[20:]}, [] if regression else ["no", "yes"])


@pytest.mark.parametrize("variant", ["bert", "roberta", "albert-reformer"])
@pytest.mark.parametrize("regression", [False, True], ids=["classification", "regression"])
def test_task_heads_fine_tune_in_bf16(datasets, variant, regression):
    """The heads' losses match fp32 and train every parameter; the loop (train steps, dev
    and test predictions) runs end to end under bf16 on padded pair batches."""
    task = pair_task(regression)
    tokenizer = datasets("bert").tokenizer
    enc = encode_examples(task.splits["train"], tokenizer, 32, model_for(variant).cfg.type_vocab_size > 1)
    batch = next(batches(enc, 8, regression))
    assert not batch["attention_mask"].all()
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        head = TaskModel(model_for(variant), task.num_labels, dropout=0.0)
        with head.encoder.seeded_hashing(HASH_SEED), autocast(torch.device("cpu"), precision):
            loss, _ = head(**batch)
        loss.backward()
        losses[precision] = loss.item()
        grads[precision] = {n: p.grad for n, p in head.named_parameters() if p.grad is not None}
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=REL)
    assert set(grads["bf16"]) == set(grads["fp32"])
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads["bf16"].values())
    cfg = FinetuneConfig(max_steps=2, batch_size=8, eval_batch_size=8, max_length=32, device="cpu",
                         precision="bf16", patience=0)
    result = finetune(model_for(variant), tokenizer, task, cfg)
    assert result.steps == 2 and result.test.n == 4 and math.isfinite(result.test.value)


@pytest.mark.parametrize("variant", list_variants())
def test_the_flop_count_does_not_depend_on_the_precision(variant):
    """Matmul FLOPs are a function of shapes: bf16 autocast must dispatch the same
    products (the reversible recomputation included) as fp32. A linear layer may run as
    one addmm or as mm + add depending on dtype and layout (the reformer's chunked FFN
    does), so those two are compared together."""
    cfg = model_for(variant).cfg
    by_precision = {}
    for precision in ("fp32", "bf16"):
        m = measured_flops(cfg, 2, 32, precision=precision)
        ops = dict(m["flops_by_op"])
        ops["aten.mm"] = ops.get("aten.mm", 0) + ops.pop("aten.addmm", 0)
        by_precision[precision] = (m["flops_per_step"], ops)
    assert by_precision["bf16"] == by_precision["fp32"] and by_precision["bf16"][0] > 0


def test_precision_is_a_validated_name_and_the_cpu_default_stays_fp32():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [resolved_precision(cpu, p) for p in PRECISIONS] == ["fp32", "fp32", "bf16"]
    assert [resolved_precision(cuda, p) for p in PRECISIONS] == ["bf16", "fp32", "bf16"]
    assert TrainConfig(max_steps=1).precision == FinetuneConfig().precision == "auto"
    with autocast(cpu):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    for make in (lambda: TrainConfig(max_steps=1, precision="bf61"), lambda: FinetuneConfig(precision="bf61")):
        with pytest.raises(ValueError, match=r"unknown precision 'bf61'. Did you mean 'bf16'\? Valid choices: "
                                             r"auto, bf16, fp32\.$"):
            make()
