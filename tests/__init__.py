"""The test suite (a package, so that `from tests.x import` finds these modules before any
installed package named `tests`: kss ships one)."""
