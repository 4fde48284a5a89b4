"""environment.yml and pyproject.toml must describe the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # PyPI name -> conda-forge name where they differ


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_lists_every_runtime_dependency_with_the_same_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip.update(_split(r) for r in entry["pip"] if not r.startswith("-e"))
        else:
            conda.update([_split(entry)])
    assert conda.get("python") == f">={project['requires-python'].removeprefix('>=')}"
    for requirement in project["dependencies"]:
        name, spec = _split(requirement)
        found = conda.get(CONDA_NAMES.get(name, name), pip.get(name))
        assert found is not None, f"{name} is in pyproject.toml but not in environment.yml"
        assert found == spec, f"{name}: pyproject says {spec!r}, environment.yml says {found!r}"
    listed = set(conda) | set(pip)
    known = {CONDA_NAMES.get(n, n) for n, _ in map(_split, project["dependencies"])} | set(
        _split(r)[0] for r in project["dependencies"]) | {"python", "pip"}
    assert listed <= known, f"environment.yml lists packages pyproject.toml lacks: {sorted(listed - known)}"
