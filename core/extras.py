"""Optional packages: which extra installs each, and the one-line error when one is missing.

The base install (`pip install -e .`) covers models, data, training, the runner, reports
and kept weights. Everything else is an extra of `pyproject.toml`, and every import of an
optional module goes through `require`, so that a feature used without its extra fails
before anything trains, in one line naming the package and the extra. This map is also
what `tests/project/test_dependencies.py` checks every third-party import of the project against:
a module that is neither a base dependency nor listed here fails that test.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# top-level module -> (the extra that installs it, the distribution that provides it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "tensorboard": ("track", "tensorboard"),
    "wandb": ("track", "wandb"),
    "mlflow": ("track", "mlflow-skinny"),
    "pyarrow": ("corpora", "pyarrow"),
    "zstandard": ("corpora", "zstandard"),
    "kss": ("kss", "kss"),
    "transformers": ("hf", "transformers"),
    "tokenizers": ("hf", "tokenizers"),
    "accelerate": ("hf", "accelerate"),
}


class MissingExtra(ValueError):
    """An optional package is not installed; the message names it and the extra to install."""


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


def install_hint(module: str) -> str:
    top = module.split(".")[0]
    extra, dist = OPTIONAL[top]
    return f"the {dist} package: pip install -e \".[{extra}]\""


def missing_extra(module: str, feature: str) -> MissingExtra:
    """'FEATURE needs the PACKAGE package: pip install -e ".[EXTRA]"'."""
    return MissingExtra(f"{feature} needs {install_hint(module)}")


def check(module: str, feature: str) -> None:
    """Fail now, in one line, if `module` is not installed (nothing is imported)."""
    if not installed(module):
        raise missing_extra(module, feature)


def require(module: str, feature: str) -> ModuleType:
    """Import an optional module, or fail in one line naming the package and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module, feature) from None
