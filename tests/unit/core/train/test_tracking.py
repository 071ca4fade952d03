"""Tracking while a run goes: what a tiny training run logs is read back with each
backend's own reader (TensorBoard's EventAccumulator, MLflow's client), step for step and
value for value against the trainer's own record; unknown or missing backends fail in one
line naming the extra."""
import math
import os

import pytest
import torch

from core.data import DataConfig, build_dataset
from core.model import PretrainingModel
from core.train import TrainConfig, Trainer
from core.train.tracking import Trackers, TrackingError, open_trackers, parse_log_to
from variants import get_config

DATA = dict(vocab_size=600, max_length=64, dupe_factor=2, max_eval_examples=64)


@pytest.fixture(scope="module")
def data(corpus_file, cache_dir):
    return build_dataset(DataConfig(**DATA), corpus_file, cache_dir)


def train_tracked(data, log_dir, names, **train):
    torch.manual_seed(0)
    model = PretrainingModel(get_config("bert", size="tiny", vocab_size=600, max_position_embeddings=64))
    cfg = TrainConfig(**{"batch_size": 8, "max_steps": 6, "log_every": 1, "eval_every": 3, "eval_points": 2,
                         "curve_examples": 16, **train})
    with open_trackers(names, log_dir, "bert/seed-0", {"arm": "bert", "seed": "0"}, {"model.hidden_size": 128}) as t:
        return Trainer(model, data, cfg, progress_bar=False, tracker=t).train()


def test_tensorboard_event_files_hold_the_logged_steps_and_values(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train_tracked(data, tmp_path, "tensorboard")
    acc = EventAccumulator(str(tmp_path / "tb" / "bert" / "seed-0"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/mlm_loss", "train/sentence_loss", "train/lr", "train/grad_norm",
            "train/tokens_per_s", "eval/mlm_loss", "eval/mlm_acc", "eval/mlm_majority_acc", "eval/nsp_acc",
            "eval/sop_acc", "eval/curve_mlm_loss", "progress/tokens", "progress/flops"} <= tags
    mlm = acc.Scalars("train/mlm_loss")
    assert [e.step for e in mlm] == list(range(1, 7))  # log_every=1: every step, at the step budget's x
    # the trainer's record: [tokens, loss, MLM loss, sentence loss] per logged step
    assert [e.value for e in mlm] == pytest.approx([row[2] for row in result.train_loss], rel=1e-6)
    assert [e.value for e in acc.Scalars("progress/tokens")[:6]] == [row[0] for row in result.train_loss]
    full = [e for e in result.evals if not e.get("curve")]
    assert [e.step for e in acc.Scalars("eval/mlm_loss")] == [e["step"] for e in full] == [3, 6]
    assert [e.value for e in acc.Scalars("eval/mlm_loss")] == pytest.approx([e["eval_mlm_loss"] for e in full])
    assert acc.Scalars("eval/sop_acc")[-1].value == pytest.approx(result.final_eval["eval_sop_acc"])
    lr = [e.value for e in acc.Scalars("train/lr")]
    assert lr[0] > 0 and lr[-1] < max(lr)  # warm-up, then decay


def test_a_token_budget_logs_at_tokens(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train_tracked(data, tmp_path, "tensorboard", max_steps=0, max_tokens=1500)
    acc = EventAccumulator(str(tmp_path / "tb" / "bert" / "seed-0"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [row[0] for row in result.train_loss]


def test_mlflow_file_store_lists_the_metrics(data, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # restored after the test
    from mlflow.tracking import MlflowClient

    result = train_tracked(data, tmp_path, "mlflow")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name(tmp_path.name)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "bert/seed-0" and run.data.tags["arm"] == "bert"
    assert run.data.params["model.hidden_size"] == "128" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/mlm_loss")
    assert sorted(m.step for m in history) == list(range(1, 7))
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == \
        pytest.approx([row[2] for row in result.train_loss], rel=1e-6)
    assert {"eval/mlm_loss", "eval/mlm_majority_acc", "train/grad_norm", "train/lr"} <= set(run.data.metrics)


def test_wandb_offline_writes_a_local_run(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    train_tracked(data, tmp_path, "wandb", max_steps=2, eval_every=0, eval_points=0)
    assert os.environ["WANDB_MODE"] == "offline"
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))


def test_log_to_follows_report_to_and_names_the_extra(monkeypatch):
    assert parse_log_to("none") == () and parse_log_to("") == ()
    with pytest.raises(TrackingError, match="unknown tracker 'tensorbord'.*tensorboard, wandb, mlflow"):
        parse_log_to("tensorbord")
    import core.train.tracking as tracking
    monkeypatch.setattr(tracking, "installed", lambda name: name != "wandb")
    with pytest.raises(TrackingError, match=r'needs the wandb package: pip install -e "\.\[track\]"') as err:
        parse_log_to("tensorboard,wandb")
    assert "\n" not in str(err.value)
    assert parse_log_to("all") == ("tensorboard", "mlflow")


def test_a_failing_backend_is_dropped_and_training_goes_on():
    logged = []

    class Broken:
        def log(self, scalars, step):
            raise OSError("disk full")

        def close(self):
            pass

    class Recorder:
        def log(self, scalars, step):
            logged.append((step, dict(scalars)))

        def close(self):
            pass

    t = Trackers({"broken": Broken(), "ok": Recorder()})
    with pytest.warns(UserWarning, match="tracker broken failed"):
        t.log({"a": 1.0, "b": None}, 3)
    t.log({"a": math.pi}, 4)
    assert list(t.backends) == ["ok"] and logged == [(3, {"a": 1.0}), (4, {"a": math.pi})]
