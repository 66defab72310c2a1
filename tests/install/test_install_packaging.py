"""Package metadata: one version, ranges (not pins) that agree with constraints.txt, and every
import the package makes covered by the core dependencies or the extra that provides it."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import softpool_video

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
CORE = [Requirement(text) for text in PROJECT["dependencies"]]
EXTRAS = {
    name: [Requirement(text) for text in reqs] for name, reqs in PROJECT["optional-dependencies"].items()
}
BUILD = [Requirement(text) for text in PYPROJECT["build-system"]["requires"]]

# import name -> distribution, for the packages whose names differ
DISTRIBUTION_OF = {"PIL": "pillow", "hydra": "hydra-core", "skvideo": "scikit-video", "yaml": "pyyaml"}


@functools.cache
def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_one_version_source():
    text = (REPO / "softpool_video" / "_version.py").read_text()
    assert re.findall(r'^__version__ = "([^"]+)"$', text, re.MULTILINE) == [softpool_video.__version__]
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    setup_py = (REPO / "setup.py").read_text()
    assert "version=_version()" in setup_py and softpool_video.__version__ not in setup_py
    # an installation of this checkout reports the same version
    try:
        distribution = importlib.metadata.distribution("softpool_video")
        direct = json.loads(distribution.read_text("direct_url.json") or "{}")
    except importlib.metadata.PackageNotFoundError:
        return
    if direct.get("url", "").rstrip("/") == REPO.as_uri():
        assert distribution.version == softpool_video.__version__


def test_changelog_has_a_section_for_this_version():
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(softpool_video.__version__)}\]?", changelog, re.MULTILINE)


def test_license_is_mit():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "softpool_video authors" in text
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]


@pytest.mark.parametrize("requirement", CORE + [r for r in BUILD if r.name != "setuptools"], ids=str)
def test_requirements_are_ranges_up_to_the_next_major(requirement):
    """A lower bound (what the code needs) and an upper bound at the next major release after the
    version we test with (constraints.txt); no pin. (The build backend, setuptools, is not capped.)"""
    operators = sorted(spec.operator for spec in requirement.specifier)
    assert operators == ["<", ">="], f"{requirement}: a lower and an upper bound, no pin"
    upper = next(s.version for s in requirement.specifier if s.operator == "<")
    tested = _constraints()[canonicalize_name(requirement.name)]
    assert upper == str(int(tested.split(".")[0]) + 1), f"{requirement}: tested with {tested}"


def test_build_backend_has_a_lower_bound():
    (setuptools,) = [r for r in BUILD if r.name == "setuptools"]
    assert [s.operator for s in setuptools.specifier] == [">="]  # SPDX license expressions: 77


@pytest.mark.parametrize(
    "requirement", [r for reqs in EXTRAS.values() for r in reqs if r.name != "softpool_video"], ids=str
)
def test_extras_have_lower_bounds_and_no_pins(requirement):
    operators = {spec.operator for spec in requirement.specifier}
    assert ">=" in operators and not operators & {"==", "===", "~="}, requirement


def test_build_and_runtime_torch_ranges_agree():
    (build_torch,) = [r for r in BUILD if r.name == "torch"]
    (runtime_torch,) = [r for r in CORE if r.name == "torch"]
    assert build_torch.specifier == runtime_torch.specifier


def test_dev_extra_installs_every_other_extra():
    (self_reference,) = [r for r in EXTRAS["dev"] if r.name == "softpool_video"]
    assert self_reference.extras == set(EXTRAS) - {"dev"}


def test_constraints_pin_every_requirement_inside_its_range():
    pins = _constraints()
    requirements = CORE + BUILD + [r for reqs in EXTRAS.values() for r in reqs if r.name != "softpool_video"]
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt has no pin for {requirement.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside the declared {requirement}"
        )
    assert "softpool-video" not in pins


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level module names imported by ``path``: (at module level, inside functions)."""
    eager, lazy = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [child.module]
            (lazy if inside else eager).update(name.split(".")[0] for name in names)
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return eager, lazy


@functools.cache
def _installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distribution(module: str) -> str:
    mapped = _installed_distributions().get(module)
    return canonicalize_name(DISTRIBUTION_OF.get(module) or (mapped[0] if mapped else module))


def test_every_import_is_a_declared_dependency():
    core = {canonicalize_name(r.name) for r in CORE}
    optional = {canonicalize_name(r.name) for name, reqs in EXTRAS.items() if name != "dev" for r in reqs}
    third_party = lambda names: {
        n for n in names if n not in sys.stdlib_module_names and n != "softpool_video"
    }
    for path in sorted((REPO / "softpool_video").rglob("*.py")):
        eager, lazy = (third_party(names) for names in _imports(path))
        where = path.relative_to(REPO)
        for module in eager:
            assert _distribution(module) in core, (
                f"{where} imports {module} at module level: not a core dependency"
            )
        for module in lazy - eager:
            assert _distribution(module) in core | optional, (
                f"{where} imports {module}, which no extra provides"
            )
