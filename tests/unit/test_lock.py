"""requirements/app.txt is the engine's lock: it matches pyproject.toml's `app` extra (offline).

A change of the extra without `bash scripts/lock.sh` fails here, naming the command; so does a
lock whose pins no longer satisfy the ranges, or a pin without hashes (pip --require-hashes in
the image would refuse it at build time, far from the change that caused it).
"""

from __future__ import annotations

import re

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO
from tooling import lock

LOCK_TEXT = (REPO / lock.LOCK).read_text()
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\#]+?))?\s*\\?\s*(?:#.*)?$")
RELOCK = "the lock does not match pyproject.toml's `app` extra: run `bash scripts/lock.sh` and commit requirements/app.txt"


def entries() -> list[tuple[str, str, str | None, list[str]]]:
    """(name, version, marker, hashes) of every pinned requirement in the lock."""
    found: list[tuple[str, str, str | None, list[str]]] = []
    for line in LOCK_TEXT.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.lstrip().startswith("--hash="):
            found[-1][3].append(line.split("--hash=")[1].split()[0].rstrip("\\").strip())
            continue
        match = PIN.match(line)
        assert match, f"not a pinned requirement in {lock.LOCK}: {line!r}"
        name, _extras, version, marker = match.groups()
        found.append((canonicalize_name(name), version, marker and marker.strip(), []))
    return found


def image_environment() -> dict[str, str]:
    python, _release = lock.image_python(REPO)
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def test_the_lock_was_made_from_the_current_app_extra_and_the_images_python():
    digest, python = lock.recorded(LOCK_TEXT)
    image_python, _ = lock.image_python(REPO)
    assert python == image_python, f"locked for Python {python}, the image's base is {image_python}: {RELOCK}"
    assert digest == lock.input_digest(lock.app_requirements(REPO), image_python), RELOCK


def test_the_input_digest_changes_with_the_extra_and_not_with_its_spelling():
    extra = ["fastapi>=0.115,<1", "redis>=5.0,<8"]
    assert lock.input_digest(extra, "3.13") == lock.input_digest(["redis >=5.0,<8", "FastAPI>=0.115,<1"], "3.13")
    assert lock.input_digest(extra, "3.13") != lock.input_digest(["fastapi>=0.116,<1", "redis>=5.0,<8"], "3.13")
    assert lock.input_digest(extra, "3.13") != lock.input_digest(extra, "3.14")


def test_every_requirement_of_the_extra_is_locked_at_a_version_it_allows():
    env = image_environment()
    pinned: dict[str, list[str]] = {}
    for name, version, marker, _ in entries():
        if marker is None or Marker(marker).evaluate(env):
            pinned.setdefault(name, []).append(version)
    for text in lock.app_requirements(REPO):
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(env):
            continue
        versions = pinned.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock.LOCK}: {RELOCK}"
        assert all(requirement.specifier.contains(Version(v), prereleases=True) for v in versions), \
            f"{lock.LOCK} pins {requirement.name}=={versions} outside {requirement.specifier}: {RELOCK}"


def test_every_pin_is_exact_and_carries_sha256_hashes():
    found = entries()
    assert len(found) > 20
    for name, _version, _marker, hashes in found:
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


def test_the_lock_carries_no_installer_and_no_toolkit_dependency():
    names = {name for name, *_ in entries()}
    assert not names & {"pip", "setuptools", "wheel", "uv"}
    assert not {n for n in names if n.startswith("pulumi")}, "the engine's lock pulls the Pulumi toolchain"


@pytest.mark.parametrize("text", ["", "FROM python:3.13-slim AS base\n",
                                  "FROM python:3.13-slim-trixie AS base\nFROM python:3.12-slim-bookworm AS base\n"])
def test_a_dockerfile_without_one_base_naming_its_release_is_refused(tmp_path, text):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text(text)
    with pytest.raises(lock.LockError, match="exactly one `FROM python:X.Y-slim-RELEASE AS base`"):
        lock.image_python(tmp_path)
