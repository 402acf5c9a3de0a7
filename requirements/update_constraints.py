"""Write requirements/constraints.txt: the installed versions of milad's dependencies.

    python requirements/update_constraints.py     # after the test suite passed

Pins every requirement of pyproject.toml (the runtime dependencies and the [test] extra) and
everything those pull in, to the version installed in the running environment, as the
`pip freeze` lines of exactly those packages (local version labels such as "+cpu" dropped,
so that the pin also matches the plain release). Install with the pins:

    pip install torch==<pinned torch>
    pip install -e ".[test]" -c requirements/constraints.txt

tests/test_environments.py checks that the file covers pyproject.toml, that each pin
satisfies pyproject's range and matches envs/milad.yaml, and that the installed versions
of the direct dependencies are the pinned ones.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "requirements" / "constraints.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def direct_requirements() -> dict[str, list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {
        "runtime": [Requirement(r) for r in project["dependencies"]],
        "test": [Requirement(r) for r in project.get("optional-dependencies", {}).get("test", [])],
    }


def closure(requirements: list[Requirement]) -> dict[str, str]:
    """{canonical name: installed public version} of requirements and their dependencies."""
    found: dict[str, str] = {}
    todo = [(req, frozenset(req.extras)) for req in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonical(req.name)
        if req.marker is not None and not any(
            req.marker.evaluate({"extra": extra}) for extra in (extras or {""})
        ):
            continue
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            if req.marker is None:
                sys.exit(f"{req.name} is required but not installed: install the project first")
            continue
        if name in found:
            continue
        found[name] = Version(dist.version).public
        for sub in dist.requires or []:
            sub_req = Requirement(sub)
            todo.append((sub_req, frozenset(req.extras) | frozenset(sub_req.extras)))
    return found


def main() -> None:
    groups = direct_requirements()
    direct = {canonical(r.name) for reqs in groups.values() for r in reqs}
    pins = closure([r for reqs in groups.values() for r in reqs])
    lines = [
        "# Versions the test suite ran with (python requirements/update_constraints.py).",
        f"# Python {sys.version.split()[0]}. Use: pip install -e \".[test]\" -c requirements/constraints.txt",
        "",
        "# direct dependencies (pyproject.toml: [project] dependencies and the [test] extra)",
    ]
    lines += [f"{name}=={pins[name]}" for name in sorted(direct)]
    lines += ["", "# what they pull in"]
    lines += [f"{name}=={pins[name]}" for name in sorted(set(pins) - direct)]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({len(pins)} packages, {len(direct)} direct)")


if __name__ == "__main__":
    main()
