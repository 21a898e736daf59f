"""image/requirements.txt (what the image installs with --require-hashes) against constraints.txt
and the project's real dependency tree, and the image scripts' pip targeting."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from image import pip_env
from image.paths import BUILD_REQUIREMENTS, REQUIREMENTS, ROOT

PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")


def locked(path) -> dict[str, tuple[str, list[str]]]:
    """canonical name -> (version, hashes) of a hash-locked requirements file."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            assert name not in pins, f"{name} pinned twice"
            pins[name] = (match[2], [])
        if name and (digest := HASH.search(line)):
            pins[name][1].append(digest[1])
    return pins


def constraints() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if match := PIN.match(line):
            out[canonicalize_name(match[1])] = match[2]
    return out


def runtime_closure() -> set[str]:
    """Every distribution the project needs at run time (no extras), from installed metadata."""
    seen: set[str] = set()
    todo = ["tekton-pipeline-listener"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    seen.discard("tekton-pipeline-listener")
    return seen


def test_lock_pins_exactly_the_runtime_closure_at_the_constrained_versions() -> None:
    pins = locked(REQUIREMENTS)
    assert set(pins) == runtime_closure()
    pinned = constraints()
    for name, (version, hashes) in pins.items():
        assert pinned[name] == version, f"{name}: lock {version}, constraints.txt {pinned[name]}"
        assert hashes, f"{name}: no hash"
    assert "pytest" not in pins and "ruff" not in pins, "test tools stay out of the image"


def test_build_lock_pins_setuptools_the_project_can_build_with() -> None:
    build = locked(BUILD_REQUIREMENTS)
    assert set(build) == {"setuptools"}
    version, hashes = build["setuptools"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    [floor] = re.findall(r'"setuptools>=(\d+)"', pyproject)
    assert int(version.split(".")[0]) >= int(floor) and hashes


def test_every_lock_entry_has_a_wheel_hash_per_architecture_where_it_is_not_pure() -> None:
    # Pure-Python wheels have one file for every platform; compiled ones one per architecture.
    for name in ("pyyaml", "bcrypt", "pydantic-core"):
        assert len(locked(REQUIREMENTS)[name][1]) >= len(pip_env.ARCHES), name


def test_pip_targets_wheels_for_the_image_python_on_every_manylinux_glibc_up_to_bookworm() -> None:
    args = pip_env.target_args("x86_64")
    assert args[:1] == ["--only-binary=:all:"]
    platforms = [args[i + 1] for i, arg in enumerate(args) if arg == "--platform"]
    assert "manylinux_2_36_x86_64" in platforms and "manylinux_2_17_x86_64" in platforms
    assert "manylinux_2_37_x86_64" not in platforms, "bookworm's glibc is 2.36"
    assert "manylinux2014_x86_64" in platforms
    env = pip_env.env()
    assert "PIP_FIND_LINKS" not in env and "PIP_EXTRA_INDEX_URL" not in env
