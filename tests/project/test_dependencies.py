"""The base install holds everything the base path imports (issue 30: `safetensors` was
imported by every finished arm and declared nowhere, so the README's first command failed
on a fresh machine while CI, which installs the extras, passed).

Every third-party import of `core/`, `variants/` and `ablations/`, at any depth (inside
functions too), must be a base dependency of `pyproject.toml` or an optional module that
`core.extras.OPTIONAL` maps to an extra which installs it. No network, no install."""
import ast
import re
import sys
import tomllib

import pytest

from core.extras import OPTIONAL, MissingExtra, check, require
from tests import ROOT

PACKAGES = ("core", "variants", "ablations")
# distributions whose import name is not their normalised distribution name
IMPORT_NAMES = {"mlflow_skinny": "mlflow", "torch_optimi": "optimi"}


def _name(requirement: str) -> str:
    dist = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0).lower().replace("-", "_").replace(".", "_")
    return IMPORT_NAMES.get(dist, dist)


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def third_party_imports() -> list[tuple[str, str]]:
    """(top-level module, "file:line") of every absolute import outside the standard library and the project."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in PACKAGES and top != "__future__":
                        found.append((top, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return found


def test_every_third_party_import_is_a_base_dependency_or_a_declared_extra():
    base = {_name(r) for r in _project()["dependencies"]}
    undeclared = [f"{where}: imports {module!r}" for module, where in third_party_imports()
                  if module not in base and module not in OPTIONAL]
    assert not undeclared, ("modules in neither pyproject's dependencies nor core.extras.OPTIONAL (add the package "
                            "to dependencies, or to an extra and to OPTIONAL):\n" + "\n".join(undeclared))


def test_the_base_path_imports_what_the_first_command_needs():
    """The two imports that broke the front door are declared where they belong."""
    base = {_name(r) for r in _project()["dependencies"]}
    assert "safetensors" in base                 # every finished arm keeps its weights with it
    assert OPTIONAL["tokenizers"][0] == "hf"     # only the HF export builds a fast tokenizer


def test_each_optional_module_is_installed_by_the_extra_it_names():
    extras = {name: {_name(r) for r in reqs} for name, reqs in _project()["optional-dependencies"].items()}
    wrong = [f"{module}: extra {extra!r} does not list {dist!r}" for module, (extra, dist) in OPTIONAL.items()
             if _name(dist) not in extras.get(extra, set())]
    assert not wrong, wrong


def test_optional_modules_are_never_base_dependencies():
    base = {_name(r) for r in _project()["dependencies"]}
    assert not base & set(OPTIONAL), "a base dependency is also listed as optional in core.extras.OPTIONAL"


def test_a_missing_optional_module_is_one_line_naming_the_package_and_the_extra(monkeypatch):
    import core.extras as extras

    monkeypatch.setitem(OPTIONAL, "no_such_module_xyz", ("track", "no-such-dist"))
    with pytest.raises(MissingExtra, match=r'^--log-to x needs the no-such-dist package: pip install -e "\.\[track\]"$'):
        check("no_such_module_xyz", "--log-to x")
    with pytest.raises(MissingExtra, match="needs the no-such-dist package"):
        require("no_such_module_xyz.sub", "reading x")
    assert not extras.installed("no_such_module_xyz.sub")
