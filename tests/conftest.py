"""Shared fixtures: run programs under the recording engine (the same one `aquascene render` uses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tooling.recording import Recording, record
from tooling.stackfile import load_stack_file

REPO = Path(__file__).resolve().parents[1]


def stack_config(env: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The engine-shaped config of Pulumi.<env>.yaml with `overrides` (key -> value) deep-replacing keys."""
    config = dict(load_stack_file(env, REPO).config)
    for key, value in (overrides or {}).items():
        config[f"aquascene:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return config


_RECORDINGS: dict[str, Recording] = {}


def recorded_stack(env: str) -> Recording:
    """The session's one recording of Pulumi.<env>.yaml as it is (tests only read it)."""
    from stacks.program import program

    if env not in _RECORDINGS:
        _RECORDINGS[env] = record(program, stack=env, config=stack_config(env))
    return _RECORDINGS[env]


@pytest.fixture
def run_stack() -> Callable[..., Recording]:
    """run_stack("prod", {"services": {...}}) -> Recording of the real program.

    A stack's recording without overrides is made once per session and shared:
    tests only read recordings, and the program is deterministic under the mocks.
    """
    from stacks.program import program

    def run(env: str, overrides: dict[str, Any] | None = None) -> Recording:
        if overrides:
            return record(program, stack=env, config=stack_config(env, overrides))
        return recorded_stack(env)

    return run


@pytest.fixture
def run_program() -> Callable[[Callable[[], Any]], Recording]:
    """Record any program (e.g. a single component) under the mocks."""

    def run(fn: Callable[[], Any]) -> Recording:
        return record(fn)

    return run
