"""Every optional feature without its extra fails before anything trains, in one line naming
the package and the extra (issue 30, item 3). The cases live in tests/optional_features.py,
which CI also runs in a venv holding only the base install, where the packages are missing."""
import pytest

from tests.optional_features import CASES, check, make_inputs, run_case


@pytest.mark.parametrize("case", CASES, ids=[c.feature for c in CASES])
def test_an_optional_feature_without_its_extra_is_one_line_before_anything_runs(case, tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_ABLATE_CACHE", str(tmp_path / "cache"))
    make_inputs(tmp_path)
    code, stderr = run_case(case, tmp_path, hide=True)
    assert check(case, tmp_path, code, stderr) == []
    assert not (tmp_path / "cache").exists()  # nothing was tokenised


def test_every_optional_module_has_a_case():
    from core.extras import OPTIONAL

    covered = {m for case in CASES for m in case.hide}
    assert set(OPTIONAL) - covered <= {"accelerate"}  # transformers' Trainer, which the project itself never runs
