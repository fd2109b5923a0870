"""The lock file and environment.yml agree; the project's kernel runs the project's interpreter."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[_norm(name)] = version
    return out


def test_environment_yml_pins_the_same_versions_as_the_lock_file():
    lock = _lock()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins = [d for d in env["dependencies"] if isinstance(d, str) and "=" in d and not d.startswith("python=")]
    assert pins, "environment.yml pins nothing"
    for dep in pins:
        name, version = dep.split("=", 1)
        assert _norm(name) in lock, f"{name} is pinned in environment.yml but not in requirements.lock"
        assert lock[_norm(name)] == version, f"{name}: environment.yml {version} vs requirements.lock {lock[_norm(name)]}"


def test_every_direct_dependency_is_locked_and_pinned_in_environment_yml():
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = _lock()
    env = {_norm(d.split("=")[0]) for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
           if isinstance(d, str)}
    for dep in deps:
        name = _norm(re.split(r"[<>=\[ ]", dep)[0])
        assert name in lock, f"{name} is a dependency but is not in requirements.lock"
        assert name in env, f"{name} is a dependency but is not in environment.yml"


def test_installed_versions_match_the_lock_file():
    from importlib import metadata

    lock = _lock()
    for name in ("numpy", "pandas", "statsmodels", "papermill", "nbconvert", "pandera"):
        assert metadata.version(name) == lock[name], f"{name} installed {metadata.version(name)} != lock {lock[name]}"


def test_project_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("leaguetables")
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()
    assert json.loads(Path(spec.resource_dir, "kernel.json").read_text())["display_name"] == "Python (leaguetables)"
