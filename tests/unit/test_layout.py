"""The tree shows the architecture: imports point one way.

components (the library) <- stacks (the Pulumi program) <- tooling (the `aquascene` command).
`pulumi up` loads stacks and components only; a module there that imported the tooling
would drag the recording engine, the CLI and their dependencies into every deployment.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# package -> packages it must never import
FORBIDDEN = {
    "components": ("tooling", "stacks", "app", "policies"),
    "stacks": ("tooling", "app", "policies"),
    "app": ("tooling", "stacks", "components"),
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, wherever in the module (functions included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_what_depends_on_it(package):
    violations = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for name in sorted(imported_packages(path) & set(FORBIDDEN[package]))
    ]
    assert violations == []


def test_the_program_entry_point_loads_no_tooling():
    assert imported_packages(REPO / "__main__.py") & {"tooling"} == set()


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tooling.render import render\n    import tooling.cli\n")
    assert imported_packages(module) == {"tooling"}
