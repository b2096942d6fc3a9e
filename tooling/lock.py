"""The content engine's locked dependencies: ``requirements/app.txt``.

``bash scripts/lock.sh`` (``python -m tooling.lock``) resolves pyproject.toml's ``app`` extra
with uv for the image's Python (the minor the Dockerfile's base names) on every platform, and
writes every pinned distribution with the hashes of its files; ``app/Dockerfile`` installs it
with ``pip --require-hashes``. The lock's header records a digest of what it was resolved from,
so ``tests/unit/test_lock.py`` notices, offline, a change of the extra that was not relocked.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK = Path("requirements/app.txt")
DOCKERFILE = Path("app/Dockerfile")
EXTRA = "app"
DIGEST_LINE = re.compile(r"^# input-sha256: ([0-9a-f]{64})$", re.MULTILINE)
PYTHON_LINE = re.compile(r"^# python: (\d+\.\d+)$", re.MULTILINE)
BASE = re.compile(r"^FROM\s+python:(\d+\.\d+)-slim-([a-z]+)(?:@sha256:[0-9a-f]{64})?\s+AS\s+base\s*$",
                  re.MULTILINE)


class LockError(Exception):
    pass


def app_requirements(repo: Path = REPO) -> list[str]:
    """The `app` extra of pyproject.toml, as written there."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][EXTRA])


def image_python(repo: Path = REPO) -> tuple[str, str]:
    """(Python minor, Debian release) of the Dockerfile's one `FROM python:X.Y-slim-RELEASE AS base`."""
    found = BASE.findall((repo / DOCKERFILE).read_text())
    if len(found) != 1:
        raise LockError(f"{DOCKERFILE} must have exactly one `FROM python:X.Y-slim-RELEASE AS base` line")
    return found[0]


def input_digest(requirements: list[str], python: str) -> str:
    """What a lock was resolved from: the extra (order and spacing aside) and the Python minor."""
    normalized = sorted(re.sub(r"\s+", "", r).lower() for r in requirements)
    return hashlib.sha256("\n".join([f"python {python}", *normalized]).encode()).hexdigest()


def recorded(lock_text: str) -> tuple[str | None, str | None]:
    """(input digest, Python minor) a lock's header records."""
    digest, python = DIGEST_LINE.search(lock_text), PYTHON_LINE.search(lock_text)
    return (digest and digest.group(1)), (python and python.group(1))


def header(requirements: list[str], python: str) -> str:
    return (
        "# The content engine's dependencies (pyproject.toml's `app` extra), locked with the hashes\n"
        "# of every file; app/Dockerfile installs them with `pip install --require-hashes`.\n"
        "# Generated: do not edit. After changing the extra, run:  bash scripts/lock.sh\n"
        f"# python: {python}\n"
        f"# input-sha256: {input_digest(requirements, python)}\n"
    )


def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not found:
        raise LockError("uv not found: install the dev extra (.venv/bin/pip install -e '.[dev]')")
    return found


def lock(repo: Path = REPO, upgrade: bool = False) -> Path:
    requirements = app_requirements(repo)
    python, _release = image_python(repo)
    target = repo / LOCK
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "app.in"
        spec.write_text("\n".join(requirements) + "\n")
        out = Path(tmp) / "app.txt"
        if target.exists() and not upgrade:
            shutil.copy(target, out)  # uv keeps the versions already locked where they still fit
        command = [uv(), "pip", "compile", str(spec), "--output-file", str(out), "--universal",
                   "--python-version", python, "--generate-hashes", "--no-header",
                   "--annotation-style", "line", "--quiet"]
        if upgrade:
            command.append("--upgrade")
        subprocess.run(command, check=True, cwd=repo)
        body = out.read_text().replace(f"-r {spec}", f"pyproject.toml [{EXTRA}]")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header(requirements, python) + body)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/lock.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="newest versions the ranges allow")
    args = parser.parse_args(argv)
    try:
        path = lock(upgrade=args.upgrade)
    except (LockError, subprocess.CalledProcessError) as exc:
        print(f"lock: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
