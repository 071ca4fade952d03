"""The CLI's flags, now generated from RunConfig, are the flags users had: the same names,
defaults and choices as the hand-written parser before (issue 31's refactor changed no CLI
behaviour), and adding a run option is one field."""
import argparse

import pytest

from ablations.cli import build_parser
from ablations.config import FIELDS, SPEC_KEYS, RunConfig, settle

# every command's arguments as the hand-written parser had them: (flag or dest, default, choices)
BEFORE = {
    "bench": [("mode", None, ("memory", "speed", "both")), ("--variants", "bert,reformer,albert-reformer", None),
              ("--seq-lens", "512,1024,2048,4096", None), ("--size", "mini", None), ("--tokens-per-batch", 8192, None),
              ("--vocab-size", None, None), ("--device", "auto", None), ("--out", None, None),
              ("--memory-limit", None, None), ("--quick", False, None), ("--compile", False, None)],
    "data": [("--corpus", None, None),
             ("--packing", None, ("segment-pair", "sentence-pair", "full-sentences", "doc-sentences")),
             ("--sentence-task", None, ("none", "nsp", "sop")), ("--masking", None, ("static", "dynamic")),
             ("--mask-unit", None, ("token", "whole-word", "ngram")), ("--max-length", None, None),
             ("--vocab-size", None, None), ("--dupe-factor", None, None), ("--seed", None, None),
             ("--tokenizer", None, None), ("--text-column", None, None),
             ("--sentence-splitter", None, ("regex", "kss")), ("--cache-dir", None, None), ("--json", False, None)],
    "export": [("run_dir", None, None), ("arm", None, None), ("--seed", None, None),
               ("--format", "auto", ("auto", "hf", "native")), ("--out", None, None)],
    "finetune": [("run_dir", None, None), ("arm", None, None), ("--seed", None, None), ("--task", None, None),
                 ("--steps", 300, None), ("--seeds", 3, None), ("--eval-every", 0, None), ("--max-length", 128, None),
                 ("--device", "auto", None), ("--json", False, None)],
    "list": [],
    "report": [("dir", None, None), ("--x", "tokens", ("tokens", "flops", "seconds"))],
    "run": [("name", None, None), ("--corpus", None, None), ("--size", None, None),
            ("--budget", "cpu", ("cpu", "gpu")), ("--steps", None, None), ("--tokens", None, None),
            ("--time-budget", None, None), ("--flops", None, None), ("--ladder", 0, None),
            ("--ladder-ratio", 2.0, None), ("--text-column", "text", None),
            ("--sentence-splitter", "regex", ("regex", "kss")), ("--log-to", "none", None),
            ("--seq-len", None, None), ("--batch-size", None, None), ("--vocab-size", None, None),
            ("--lr", None, None), ("--lr-search", False, None), ("--lr-grid", None, None),
            ("--lr-search-fraction", None, None), ("--device", "auto", None), ("--seed", 0, None),
            ("--seeds", 1, None), ("--out", None, None), ("--quick", False, None),
            ("--keep-checkpoints", False, None), ("--no-progress", False, None), ("--compile", False, None),
            ("--precision", "auto", ("auto", "fp32", "bf16")), ("--downstream", None, None),
            ("--downstream-steps", 300, None), ("--downstream-seeds", 1, None), ("--arms", None, None),
            ("--shard", None, None), ("--workers", 1, None), ("--nproc-per-node", 1, None)],
    "show": [("name", None, None)],
}


def _now() -> dict[str, list]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, parser in sub.choices.items():
        rows = []
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            default = a.default
            if isinstance(a, argparse._StoreFalseAction):  # --no-progress: progress=True is "not given"
                default = False
            rows.append((a.option_strings[0] if a.option_strings else a.dest, default,
                         tuple(a.choices) if a.choices else None))
        out[name] = rows
    return out


def test_every_command_keeps_its_flags_defaults_and_choices():
    assert _now() == BEFORE


def test_a_run_flag_is_one_field():
    """What a flag needs (name, help, range, group) comes from its field; the TOML defaults
    an ablation may set are the fields marked spec=True."""
    assert set(SPEC_KEYS) == {"size", "seq_len", "batch_size", "tokens", "steps", "lr", "vocab_size",
                              "tokens_per_batch", "lr_search", "lr_grid", "lr_search_fraction"}
    for name, f in FIELDS.items():
        if f.metadata.get("cli"):
            assert f.metadata["help"], name


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1 (optimizer steps per arm), got 0"),
    (["--time-budget", "0"], "--time-budget must be >= 1 (seconds), got 0.0"),
    (["--workers", "0"], "--workers must be >= 1 (arm trainers on this machine), got 0"),
])
def test_a_flag_and_a_python_caller_meet_the_same_check(argv, message, capsys):
    from ablations.cli import main

    assert main(["run", "objective", "--quick", *argv]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    field, value = argv[0][2:].replace("-", "_"), float(argv[1])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(**{field: value if field == "time_budget" else int(value)})


def test_settle_fills_every_shape_and_the_budget_once():
    from ablations.specs import get_ablation

    spec = get_ablation("albert_reformer")
    settled = settle(spec, RunConfig())
    assert settled.settled and settled.size == spec.defaults["size"] and settled.budget.max_tokens == 400_000
    assert settle(spec, settled) == settled  # settling a settled config changes nothing
    assert settle(spec, RunConfig(quick=True)).budget.max_steps == 3


def test_configuration_keys_are_those_finished_runs_were_written_with():
    """A configuration's key is how finished rows are found again: the refactor to one
    RunConfig and one meaning of an unset budget (None) leaves every key as it was (these
    are the keys the version before it computed)."""
    from ablations.plan import resolve_arm
    from ablations.specs import get_ablation

    spec = get_ablation("albert_reformer")
    keys = [resolve_arm(spec, a, settle(spec, RunConfig()), "fp").key for a in spec.arms]
    assert keys == ["600eb063434ff648", "cd03d7e5a55c4a31", "2eaf3cd323ef72d5", "a46999cf8ac149f3",
                    "50e1801cfcf2296c", "5af578328e708e7e"]
    spec = get_ablation("attention")
    assert resolve_arm(spec, spec.base_arm, settle(spec, RunConfig()), "fp").key == "288552fee2e2be5d"
