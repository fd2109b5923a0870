"""The lock file and environment.yml agree; the project's kernel runs the project's interpreter."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from environment_from_lock import read_lock  # noqa: E402  (a script, not part of the package)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    return read_lock(ROOT / "requirements.lock")


def _direct() -> list[Requirement]:
    """The direct requirements the lock is compiled from: pyproject's dependencies and its test extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_the_lock_is_compiled_from_pyproject_by_make_lock():
    head = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()[:6]
    assert any("pip-compile with Python 3.11" in line for line in head), head
    assert any(line.strip() == "#    make lock" for line in head), head


def test_environment_yml_pins_every_locked_package_at_its_version():
    lock = _lock()
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert env["channels"] == ["conda-forge"]
    pins = [d for d in env["dependencies"] if isinstance(d, str) and "=" in d and not d.startswith("python=")]
    assert "python=3.11" in env["dependencies"]
    pinned = {_norm(name): version for name, version in (d.split("=", 1) for d in pins)}
    assert sorted(set(lock) - set(pinned)) == [], "locked but not pinned in environment.yml (run make lock)"
    assert sorted(set(pinned) - set(lock)) == [], "pinned in environment.yml but not locked (run make lock)"
    differ = {n: (pinned[n], lock[n]) for n in lock if pinned[n] != lock[n]}
    assert not differ, f"environment.yml vs requirements.lock: {differ} (run make lock)"


def test_every_direct_dependency_is_locked_within_its_bounds():
    lock = _lock()
    for req in _direct():
        name = _norm(req.name)
        assert name in lock, f"{req.name} is a dependency but is not in requirements.lock (run make lock)"
        assert req.specifier.contains(lock[name]), f"{req}: locked {lock[name]} is outside the bounds"
    unbounded = [str(r) for r in _direct() if not r.specifier and not r.name.startswith("types-")]
    assert not unbounded, f"direct dependencies without a lower bound: {unbounded}"


def test_the_lock_holds_nothing_unused():
    """Every locked package is a direct requirement or required by one (through the installed packages'
    metadata): no package left over from an earlier environment (as gptables, xlsxwriter and xlrd were)."""
    lock = _lock()
    env = {"python_version": "3.11", "extra": ""}
    needed: set[str] = set()
    todo = [r for r in _direct() if r.marker is None or r.marker.evaluate(env)]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in needed:
            continue
        needed.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{req.name} is required but not installed (make setup)")
        for text in requires:
            sub = Requirement(text)
            extras = [""] + sorted(req.extras)
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in extras):
                todo.append(sub)
    assert sorted(set(lock) - needed) == [], "locked but required by nothing (run make lock)"


def test_installed_versions_match_the_lock_file():
    lock = _lock()
    installed = {name: metadata.version(name) for name in lock}
    differ = {n: (installed[n], lock[n]) for n in lock if installed[n] != lock[n]}
    assert not differ, f"installed vs locked: {differ} (make setup)"


def test_project_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("leaguetables")
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
    assert json.loads(Path(spec.resource_dir, "kernel.json").read_text())["display_name"] == "Python (leaguetables)"
