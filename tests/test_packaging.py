"""The package installs as declared: imports, ``pyproject.toml`` and ``requirements.lock`` agree.

``pip install .`` installs what ``pyproject.toml`` declares and nothing else, so a
module that imports a package brought in only by a dev tool (pandas came with
recordlinkage) or by another dependency's internals (starlette with FastAPI)
works in ``.venv`` and fails on a fresh install. deptry checks the imports
against the declarations (``make test`` runs it too; here it fails with the
finding); the lock test checks that ``make``'s hashed, pinned set still
satisfies every declaration, so the lock cannot fall behind ``pyproject.toml``.
The full check, ``pip install .`` into an empty venv, downloads about 1 GB and
is not part of the suite: see ``README.md``.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import ctis

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEPTRY = Path(sys.executable).parent / "deptry"


def _deptry(*args: str) -> subprocess.CompletedProcess[str]:
    if not DEPTRY.exists():
        pytest.fail(f"{DEPTRY} is missing: deptry is in the dev extra (make rebuilds .venv from the lock)")
    return subprocess.run(  # noqa: S603 - our own venv's deptry on our own tree
        [str(DEPTRY), *args, "--no-ansi"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_every_import_of_ctis_is_a_declared_runtime_dependency() -> None:
    run = _deptry("src")
    assert run.returncode == 0, run.stdout + run.stderr


def test_tests_and_benchmarks_import_only_declared_packages() -> None:
    run = _deptry("tests", "benchmarks", "--ignore", "DEP002,DEP004")
    assert run.returncode == 0, run.stdout + run.stderr


def test_makefile_test_target_runs_deptry_before_pytest() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index("deptry src") < recipe.index("-m pytest")
    assert "deptry tests" in recipe


def test_every_module_of_ctis_imports() -> None:
    """A module no test imports would escape deptry's sibling failure: an import error at run time."""
    modules = pkgutil.walk_packages(ctis.__path__, "ctis.")
    names = [m.name for m in modules if ".migrations.versions." not in m.name]  # Alembic loads those
    assert len(names) > 50
    for name in names:
        importlib.import_module(name)


def _lock() -> dict[str, tuple[str, int]]:
    """Each locked distribution: its version and how many hashes it carries."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        found = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==(\S+)", block)
        if found:
            pins[canonicalize_name(found[1])] = (found[2], block.count("--hash=sha256:"))
    return pins


def test_lock_satisfies_every_declared_dependency() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"].values()
    declared = [*project["dependencies"], *(line for group in extras for line in group)]
    pins = _lock()
    assert len(pins) > 50
    unmet = []
    for line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        on_311 = requirement.marker is None or requirement.marker.evaluate({"python_version": "3.11"})
        if name == "ctis" or not on_311:  # the lock is compiled for Python 3.11 (-p 3.11)
            continue
        if name not in pins or not requirement.specifier.contains(pins[name][0], prereleases=True):
            unmet.append(f"{line} (locked: {pins.get(name, ('none',))[0]})")
    assert not unmet, "requirements.lock is behind pyproject.toml; re-run uv pip compile (README.md)"
    assert all(hashes > 0 for _, hashes in pins.values()), "every pin carries its hashes (--require-hashes)"


def test_undeclared_leftovers_are_gone_from_the_lock() -> None:
    """khmer-nltk was declared and never imported (screening segments Khmer itself); its tree went with it."""
    pins = _lock()
    assert "khmer-nltk" not in pins and "sklearn-crfsuite" not in pins


def test_build_backend_floor_reads_the_licence_expression() -> None:
    """``license = "Apache-2.0"`` (PEP 639) is refused by setuptools before 77: the floor must say so."""
    assert isinstance(PYPROJECT["project"]["license"], str)
    floor = next(Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools"))
    assert not floor.specifier.contains("76.1.0") and floor.specifier.contains("77.0.3")
