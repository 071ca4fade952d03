"""Two nodes tried on one host: the multi-node smoke command of docs/distributed.md, run as
written (its script and its torchrun line are read from that page) by two torchrun launchers,
`--nnodes 2 --nproc-per-node 1`, c10d rendezvous on 127.0.0.1, gloo on CPU.

This is the path where a rank's global and local rank differ (the second node's rank 1
has local rank 0). Each node works in its own directory with its own copy of the corpus,
as machines without a shared run directory do (the data cache is the test session's,
filled before they start). The run must equal one process with grad_accum=2 (losses and
weights to 1e-5), and rank 0 alone writes: the other node's directory stays as it was."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.train import TrainConfig, Trainer
from core.train.checkpoint import CHECKPOINT, load_checkpoint
from tests import ROOT
from variants import build_model, get_variant

RECIPE_PAGE = ROOT / "docs" / "distributed.md"


def recipe() -> tuple[str, str]:
    """The page's pretrain.py and its smoke-run torchrun command (one line, unwrapped)."""
    text = RECIPE_PAGE.read_text(encoding="utf-8")
    script = re.search(r"cat > pretrain\.py <<'EOF'\n(.*?)\nEOF\n", text, flags=re.S)
    command = re.search(r"^(torchrun [^\n]*--rdzv-id smoke(?:[^\n]*\\\n)*[^\n]*)$", text, flags=re.M)
    assert script and command, "docs/distributed.md: the multi-node recipe (pretrain.py and the smoke torchrun line) is missing"
    return script.group(1) + "\n", command.group(1).replace("\\\n", " ")


def flag(command: str, name: str) -> str:
    return re.search(rf"--{name} (\S+)", command).group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_one_host_equal_one_process_and_rank_0_alone_writes(tmp_path, corpus_file, cache_dir):
    script, command = recipe()
    variant, steps = flag(command, "variant"), int(flag(command, "steps"))
    data_cfg = DataConfig(vocab_size=int(flag(command, "vocab-size")), max_length=int(flag(command, "max-length")),
                          **get_variant(variant).data)
    data = build_dataset(data_cfg, corpus_file, cache_dir)  # cached before the nodes read it

    nodes = [tmp_path / f"node{k}" for k in (0, 1)]
    for node in nodes:
        node.mkdir()
        (node / "pretrain.py").write_text(script)
        shutil.copy(corpus_file, node / flag(command, "corpus"))
    port = free_port()
    line = command.replace(":29500", f":{port}").replace("torchrun ", f"{sys.executable} -m torch.distributed.run ", 1)
    env = {**os.environ, "HOST": "127.0.0.1", "PYTHONPATH": str(ROOT), "BERT_ABLATE_CACHE": str(cache_dir),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(["bash", "-c", line], cwd=node, env={**env, "NODE": str(k)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for k, node in enumerate(nodes)]
    outputs = []
    for p in procs:  # 24 s alone on 2 cores; minutes when other jobs share them (a CI check beside two runs took > 240)
        try:
            outputs.append(p.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two torchrun launchers did not finish within 600 s")
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)[-3000:]
    ranks = sorted(re.search(r"rank (\d) of 2, local rank (\d), cpu", out).groups() for out in outputs)
    assert ranks == [("0", "0"), ("1", "0")]  # global rank 1, local rank 0: the case that differs

    writer = [node for node, out in zip(nodes, outputs, strict=True) if "rank 0 of 2" in out][0]
    other = nodes[1 - nodes.index(writer)]
    out_dir = flag(command, "out")
    assert sorted(p.name for p in other.iterdir()) == sorted(["pretrain.py", flag(command, "corpus")])
    assert sorted(p.name for p in (writer / out_dir).iterdir()) == [CHECKPOINT, "result.json"]

    torch.manual_seed(0)
    model = build_model(variant, size=flag(command, "size"), vocab_size=data_cfg.vocab_size,
                        max_position_embeddings=data_cfg.max_length, hidden_dropout=0.0, attention_dropout=0.0)
    train = TrainConfig(batch_size=int(flag(command, "batch-size")), grad_accum=2, max_steps=steps,
                        checkpoint_every=500, log_every=1, device="cpu")
    one = Trainer(model, data, train, progress_bar=False).train()
    got = json.loads((writer / out_dir / "result.json").read_text())
    assert len(got["train_loss"]) == len(one.train_loss) == steps
    for a, b in zip(got["train_loss"], one.train_loss, strict=True):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], abs=1e-5)  # global tokens exactly, losses
    assert got["eval_mlm_loss"] == pytest.approx(one.final_eval["eval_mlm_loss"], abs=1e-5)
    weights = load_checkpoint(writer / out_dir / CHECKPOINT)["model"]
    mine = model.state_dict()
    assert weights.keys() == mine.keys()
    assert max(float((weights[k].float() - mine[k].float()).abs().max()) for k in mine) < 1e-5


def test_one_torchrun_rank_still_joins_a_group(monkeypatch):
    """torchrun --nproc-per-node 1 (one GPU): the rank joins a group of one, so a script's
    own barrier works and nccl starts; a plain process joins none."""
    import torch.distributed as dist

    from core.train.distributed import init_from_env, teardown

    world, _ = init_from_env("cpu")
    assert not dist.is_initialized() and world.size == 1
    for var, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(var, value)
    try:
        world, _ = init_from_env("cpu")
        assert dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 1
        assert not world.distributed  # the Trainer's collectives stay no-ops
        dist.barrier()
    finally:
        teardown()
