"""deploy/constraints.txt pins a version of every dependency pyproject.toml names, inside its range.

Bootstrap and the container install with ``-c deploy/constraints.txt``: a range changed in
pyproject.toml without running deploy/local/lock would make that install fail on a fresh machine (or,
for a new dependency, install an unpinned version). This test says so before a fresh machine does.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    result = {}
    for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            result[canonicalize_name(name)] = version
    return result


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    return [Requirement(text) for text in listed]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    problems = []
    for requirement in requirements():
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name}: not pinned")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "run deploy/local/lock: " + "; ".join(problems)


def test_pins_are_exact_and_unique() -> None:
    lines = [line for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(line.count("==") == 1 for line in lines)
    assert len(pins()) == len(lines), "a package is pinned twice"
