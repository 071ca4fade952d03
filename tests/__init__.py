"""The test suite (a package, so that `from tests.x import` finds these modules before any
installed package named `tests`: kss ships one). It mirrors the code: `unit/<package>/` for
one package's behaviour, `integration/` for what a user runs end to end (the CLI, run
directories, several processes), `project/` for the repository's own rules (layout, docs,
dependencies)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]          # the repository
SHARED_DATA = ROOT.parent / "shared" / "data"        # ../shared/data: optional real data
