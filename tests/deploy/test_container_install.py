"""The container image's install step, run where no container engine is: deploy/container/install on
exactly the files the Dockerfile's build stage copies, in a scratch directory, into a virtualenv in
tmp; then the installed worker's ``--help``.

It proves that the Dockerfile copies everything the package needs, that the install takes the pinned
versions of deploy/constraints.txt, and that the installed (not editable) package starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"


def build_stage_copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY from the build context in the Dockerfile's build stage."""
    copies: list[tuple[str, str]] = []
    stage = None
    for line in DOCKERFILE.read_text().splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            stage = words[-1] if len(words) >= 4 and words[-2].upper() == "AS" else None
        elif words[0] == "COPY" and stage == "build" and not any(w.startswith("--from") for w in words):
            *sources, destination = words[1:]
            copies += [(source, destination) for source in sources]
    return copies


def pins() -> dict[str, str]:
    lines = (REPO / "deploy" / "constraints.txt").read_text().splitlines()
    return {canonicalize_name(n): v for n, v in (line.split("==") for line in lines if line and not line.startswith("#"))}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's /opt/endusers, built from a copy of what the Dockerfile copies."""
    scratch = tmp_path_factory.mktemp("container")
    source = scratch / "src"  # the build stage's WORKDIR
    source.mkdir()
    for item, destination in build_stage_copies():
        target = source / (item if destination in ("./", ".") else destination)
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / item, target)
    prefix = scratch / "opt-endusers"
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    environment["PATH"] = os.pathsep.join(p for p in environment.get("PATH", "").split(os.pathsep)
                                          if not p.startswith(str(REPO / ".venv")))
    proc = subprocess.run([str(source / "deploy" / "container" / "install"), str(prefix)], cwd=source,
                          env=environment, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"deploy/container/install failed:\n{proc.stderr}{proc.stdout}"
    return prefix


def test_the_dockerfile_copies_the_sources_and_the_pins() -> None:
    copied = {source for source, _ in build_stage_copies()}
    assert {"pyproject.toml", "deploy/constraints.txt", "deploy/container/install",
            "schemas", "counters", "streams"} <= copied


def test_installed_worker_starts_and_shows_its_help(installed: Path) -> None:
    proc = subprocess.run([str(installed / "bin" / "endusers"), "worker", "--help"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "worker" in proc.stdout


def test_install_takes_the_pinned_versions_and_no_test_tools(installed: Path) -> None:
    proc = subprocess.run([str(installed / "bin" / "python"), "-m", "pip", "list", "--format=freeze",
                           "--exclude-editable"], capture_output=True, text=True, timeout=120, check=True)
    present = {canonicalize_name(n): v for n, v in (line.split("==") for line in proc.stdout.split())}
    pinned = pins()
    unpinned = {name for name in present if name not in pinned} - {"pip", "setuptools", "endusers"}
    assert not unpinned, f"installed without a pin: {unpinned}"
    assert {name: present[name] for name in present if name in pinned} == \
        {name: pinned[name] for name in present if name in pinned}
    assert "pytest" not in present and "mypy" not in present


def test_the_package_is_installed_not_linked_to_the_sources(installed: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    proc = subprocess.run([str(installed / "bin" / "python"), "-c",
                           "import streams, counters, schemas, importlib.resources as r; "
                           "print(streams.__file__); print(r.files('streams.http') / 'static' / 'index.html')"],
                          capture_output=True, text=True, timeout=120, check=True, cwd="/", env=environment)
    module, page = proc.stdout.split()
    assert module.startswith(str(installed)) and Path(page).is_file()
