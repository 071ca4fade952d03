"""The row schema (`ablations.rows`): rows of every version read into typed rows, are written
back as they were read, and render the report the version that wrote them rendered."""
import json
import shutil

import pytest

from ablations.report import render_report
from ablations.rows import ROW_VERSION, BenchRow, EvalPoint, Row, TaskScore
from ablations.rundir import append_row, read_bench, read_results, read_rows
from tests import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "rows_v1"


@pytest.mark.parametrize("name", ["albert_reformer", "downstream"])
def test_version_1_rows_render_the_report_that_version_rendered(tmp_path, name):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    render_report(run)
    for rendered in ("report.md", "results.csv"):
        assert (run / rendered).read_bytes() == (FIXTURES / name / rendered).read_bytes(), rendered


@pytest.mark.parametrize("name", ["albert_reformer", "downstream"])
def test_version_1_rows_read_into_typed_rows_and_back(name):
    lines = [json.loads(line) for line in (FIXTURES / name / "results.jsonl").read_text().splitlines()]
    rows = read_results(FIXTURES / name)
    assert len(rows) == len(lines) and all(isinstance(r, Row) for r in rows)
    for row, line in zip(rows, lines):
        assert row.row_version == 1 and not row.extra  # the schema knows every field version 1 wrote
        assert row.to_json() == line and list(row.to_json()) == list(line)  # the same keys, in their order
        assert row.arm == line["arm"] and row.status == "ok" and row.eval_mlm_loss == line["eval_mlm_loss"]
        assert row.config["train.lr"] == line["config"]["train.lr"] and row.resume.kind == "fresh"
        assert all(isinstance(e, EvalPoint) for e in row.evals) and any(e.curve for e in row.evals)
    if name == "downstream":
        score = rows[0].downstream["task"]
        assert isinstance(score, TaskScore) and score.metric == "accuracy" and score.n == 60
        assert score.score == lines[0]["downstream_task"] and len(score.seed_values) == 2


def test_a_row_is_written_with_its_version_and_read_back_the_same(tmp_path):
    line = json.loads((FIXTURES / "downstream" / "results.jsonl").read_text().splitlines()[0])
    path = tmp_path / "results.jsonl"
    append_row(path, Row.from_json(line))
    written = json.loads(path.read_text())
    assert list(written)[0] == "row_version" and written["row_version"] == ROW_VERSION
    assert {k: v for k, v in written.items() if k != "row_version"} == line  # the same flat keys as before
    (again,) = read_rows(path)
    assert again.row_version == ROW_VERSION and again.to_json() == written
    append_row(path, again)  # a row of this version is written as it was read
    assert json.loads(path.read_text().splitlines()[1]) == written


def test_keys_the_schema_does_not_know_survive_a_round_trip(tmp_path):
    line = {"row_version": 3, "arm": "a", "seed": 1, "status": "ok", "a_later_field": {"x": [1, 2]},
            "downstream_t_metric": "accuracy", "downstream_t": float("nan"), "downstream_t_later": 7,
            "downstream_u_n": 5, "eval_mlm_loss": 4.2}
    row = Row.from_json(line)
    assert row.extra == {"a_later_field": {"x": [1, 2]}, "downstream_t_later": 7, "downstream_u_n": 5}
    assert row.downstream["t"].score is None  # NaN (older rows' undefined score) reads as undefined
    path = tmp_path / "results.jsonl"
    append_row(path, row)
    (back,) = read_rows(path)
    assert json.dumps(back.to_json()) == json.dumps(line)
    # a merge keeps every key it does not set, in its place, and adds a new one last
    merged = row.merged({"status": "nan", "failed_step": "train"})
    assert list(merged.to_json()) == [*line, "failed_step"] and merged.extra == row.extra
    assert merged.status == "nan" and row.status == "ok"  # rows are frozen: merging makes a new one


def test_rows_of_the_wrong_shape_inside_are_skipped_with_the_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {"arm": "a", "seed": 0, "status": "ok", "evals": [{"step": 1, "curve": True}]}
    path.write_text("\n".join(json.dumps(r) for r in [good, {**good, "evals": 3}, {**good, "resume": "fresh"},
                                                      {**good, "config": [1]}]) + "\n")
    with pytest.warns(UserWarning) as caught:
        rows = read_rows(path)
    assert [r.to_json() for r in rows] == [good]
    said = [str(w.message) for w in caught]
    assert any(f"{path}:2: evals is a JSON int, not a list" in m for m in said)
    assert any(f"{path}:3: resume is a JSON str, not an object" in m for m in said)
    assert any(f"{path}:4: config is a JSON list, not an object" in m for m in said)


def test_a_dict_is_read_into_the_schema_before_it_is_written(tmp_path):
    from ablations.rows import RowError

    with pytest.raises(RowError, match="no arm name"):
        append_row(tmp_path / "results.jsonl", {"status": "ok"})
    with pytest.raises(RowError, match="eval_mlm_loss 'x' is not a number"):
        append_row(tmp_path / "results.jsonl", {"arm": "a", "eval_mlm_loss": "x"})
    append_row(tmp_path / "bench.jsonl", {"variant": "bert", "seq_len": 64, "status": "ok", "flops_label": "exact"})
    (bench,) = read_bench(tmp_path / "bench.jsonl")
    assert isinstance(bench, BenchRow) and bench.seq_len == 64 and not bench.skipped and bench.row_version == 2
