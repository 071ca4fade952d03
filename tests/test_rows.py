"""Rows written by earlier versions still read and render as they did."""
import shutil
from pathlib import Path

import pytest

from ablations.report import render_report

FIXTURES = Path(__file__).parent / "fixtures" / "rows_v1"


@pytest.mark.parametrize("name", ["albert_reformer", "downstream"])
def test_version_1_rows_render_the_report_that_version_rendered(tmp_path, name):
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    render_report(run)
    for rendered in ("report.md", "results.csv"):
        assert (run / rendered).read_bytes() == (FIXTURES / name / rendered).read_bytes(), rendered
