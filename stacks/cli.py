"""The `aquascene` command: offline tooling around the Pulumi program.

  aquascene render STACK [--out DIR] [--project-dir DIR]

Exit codes: 0 everything valid, 1 invalid objects, 2 configuration or usage error.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from stacks.config import ConfigError
from stacks.stackfile import StackFileError, find_project_dir

EXIT_OK, EXIT_INVALID, EXIT_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aquascene", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    render_cmd = commands.add_parser(
        "render", help="render a stack's Kubernetes objects offline, validate them, write resources.json"
    )
    render_cmd.add_argument("stack", help="stack name: reads Pulumi.STACK.yaml (dev, staging, prod, ...)")
    render_cmd.add_argument("--out", type=Path, help="output directory (default: build/render/STACK)")
    render_cmd.add_argument("--project-dir", type=Path, help="directory holding Pulumi.yaml (default: found from CWD)")
    render_cmd.set_defaults(handler=_render)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, StackFileError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


def _render(args: argparse.Namespace) -> int:
    from stacks.render import render

    project_dir = args.project_dir or find_project_dir()
    out_dir = args.out or project_dir / "build" / "render" / args.stack
    started = time.perf_counter()
    result = render(args.stack, project_dir, out_dir)
    elapsed = time.perf_counter() - started

    counts = result.type_counts()
    width = max(len(t) for t in counts)
    print(f"stack {args.stack}: {sum(counts.values())} resources -> {out_dir}")
    print(f"{'TYPE'.ljust(width)}  COUNT")
    for type_token, count in sorted(counts.items()):
        print(f"{type_token.ljust(width)}  {count}")
    valid = len(result.objects) - len(result.invalid) - len(result.skipped)
    print(
        f"kubernetes objects: {len(result.objects)} written, {valid} valid, "
        f"{len(result.invalid)} invalid, {len(result.skipped)} skipped (no schema)"
    )
    for obj in result.skipped:
        print(f"  skipped  {obj.kind}/{obj.name}: {obj.verdict.message}")
    for obj in result.invalid:
        print(f"  INVALID  {obj.kind}/{obj.name} ({obj.path.name}): {obj.verdict.message}")
    print(f"done in {elapsed:.2f}s")
    return EXIT_INVALID if result.invalid else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
