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


# ------------------------------------------------------------------ figures
#
# Tests that measure (fault drills, the soak, the live-cluster lifecycle) report their figures
# as a user property of the test's report (JUnit keeps them too); the run's summary prints
# every figure in a section of its own.

FIGURES_PROPERTY = "figures"
_FIGURES: dict[str, list[str]] = {}


def report_figures(request: pytest.FixtureRequest, section: str, name: str, figures: dict[str, Any]) -> None:
    """`name: key=value, ...` under `section` at the end of the run (and in the JUnit properties)."""
    for key, value in figures.items():
        request.node.user_properties.append((f"{name}.{key}", value))
    request.node.user_properties.append(
        (FIGURES_PROPERTY, [section, f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items())]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == FIGURES_PROPERTY and value[1] not in _FIGURES.setdefault(value[0], []):
            _FIGURES[value[0]].append(value[1])


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    for section, lines in _FIGURES.items():
        terminalreporter.section(section)
        for line in lines:
            terminalreporter.write_line(line)


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
