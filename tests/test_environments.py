"""Software environments agree with each other: pyproject.toml (the ranges), envs/*.yaml (the
conda environments of the rules) and requirements/constraints.txt (the versions the tests
ran with). Conda is not available on the machines the tests run on, so the environment
files are checked by comparing package lists, not by building them.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
REGENERATE = "regenerate with: python requirements/update_constraints.py"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def runtime_requirements() -> dict[str, Requirement]:
    return {canonical(Requirement(r).name): Requirement(r) for r in project()["dependencies"]}


def extra_requirements() -> dict[str, Requirement]:
    extra = project().get("optional-dependencies", {}).get("test", [])
    return {canonical(Requirement(r).name): Requirement(r) for r in extra}


def constraints() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt: '{line}' is not an exact pin"
            pins[canonical(name)] = pinned.strip()
    return pins


def pip_section(env_file: Path) -> list[str]:
    env = yaml.safe_load(env_file.read_text())
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, f"{env_file.name}: expected one pip: section"
    return sections[0]


ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_conda_env_matches_pyproject(env_file):
    """Each rule environment lists exactly pyproject's runtime dependencies, pinned exactly
    to versions inside pyproject's ranges and equal to requirements/constraints.txt."""
    wanted = runtime_requirements()
    pins = constraints()
    entries = pip_section(env_file)
    assert all("==" in entry for entry in entries), f"pin every package of {env_file.name}"
    env_pins = {canonical(e.split("==")[0]): e.split("==")[1].strip() for e in entries}
    assert set(env_pins) == set(wanted), (
        f"{env_file.name} vs pyproject.toml: only in env {set(env_pins) - set(wanted)}, "
        f"only in pyproject {set(wanted) - set(env_pins)}"
    )
    for name, pinned in env_pins.items():
        assert wanted[name].specifier.contains(pinned, prereleases=True), (
            f"{env_file.name}: {name}=={pinned} outside pyproject's {wanted[name]}"
        )
        assert pins.get(name) == pinned, (
            f"{env_file.name}: {name}=={pinned} but constraints.txt pins {pins.get(name)}"
        )
    python = [d for d in yaml.safe_load(env_file.read_text())["dependencies"]
              if isinstance(d, str) and d.startswith("python")]
    assert python, f"{env_file.name} does not pin python"


def test_constraints_cover_pyproject_within_its_ranges():
    pins = constraints()
    for name, requirement in {**runtime_requirements(), **extra_requirements()}.items():
        assert name in pins, f"constraints.txt lacks {name}; {REGENERATE}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]} outside pyproject's {requirement}"
        )


def test_installed_versions_are_the_pinned_ones():
    """The tests run with the pinned versions (install with -c requirements/constraints.txt)."""
    pins = constraints()
    drift = []
    for name in {**runtime_requirements(), **extra_requirements()}:
        try:
            installed = Version(version(name)).public
        except PackageNotFoundError:
            drift.append(f"{name} not installed")
            continue
        if installed != pins.get(name):
            drift.append(f"{name}: installed {installed}, pinned {pins.get(name)}")
    assert not drift, (
        "installed versions differ from requirements/constraints.txt: " + "; ".join(drift)
        + ". Install with pip install -e '.[test]' -c requirements/constraints.txt, or, after "
        "the test suite passed with the new versions, " + REGENERATE
        + " and update envs/*.yaml to match"
    )


def test_readme_and_ci_install_with_the_constraints():
    assert "requirements/constraints.txt" in (ROOT / "README.md").read_text()
    assert "-c requirements/constraints.txt" in (ROOT / ".ci" / "run").read_text()
