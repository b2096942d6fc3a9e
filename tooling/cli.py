"""The `aquascene` command: offline tooling around the Pulumi program.

  aquascene render STACK [--out DIR] [--project-dir DIR]
  aquascene policy STACK [--json] [--config FILE] [--project-dir DIR]
  aquascene policy --export FILE [--config FILE] [--json]
  aquascene check STACK [--project-dir DIR]
  aquascene diff STACK_A STACK_B [--json] [--all] [--project-dir DIR]

Exit codes: 0 everything valid, 1 invalid objects, 2 configuration or usage error.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import NoReturn, Sequence

from tooling.stackfile import StackFileError, find_project_dir

EXIT_OK, EXIT_INVALID, EXIT_CONFIG = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    # A command is short-lived and allocates mostly objects that live until it ends (the SDKs'
    # classes, the recorded resources): the cyclic collector would walk them again and again for
    # nothing (about a third of a render's CPU time). Off for the command, on again after it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _main(argv)
    finally:
        if collecting:
            gc.enable()


def run() -> NoReturn:
    """`aquascene` as a process (the console script, `python -m tooling`): `main`, then exit."""
    code = main()
    # At exit the interpreter's last collection walks every object still alive (the SDKs' thousands
    # of classes and modules) only to free memory the OS takes back anyway: a quarter of a prod
    # render's time. Frozen objects are out of its reach; finalizers and atexit still run.
    gc.freeze()
    sys.exit(code)


def _main(argv: Sequence[str] | None) -> int:
    from stacks.config import ConfigError  # imported here, so with the collector off

    parser = argparse.ArgumentParser(prog="aquascene", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    render_cmd = commands.add_parser(
        "render", help="render a stack's Kubernetes objects offline, validate them, write resources.json"
    )
    render_cmd.add_argument("stack", help="stack name: reads Pulumi.STACK.yaml (dev, staging, prod, ...)")
    render_cmd.add_argument("--out", type=Path, help="output directory (default: build/render/STACK)")
    render_cmd.add_argument("--project-dir", type=Path, help="directory holding Pulumi.yaml (default: found from CWD)")
    render_cmd.set_defaults(handler=_render)

    policy_cmd = commands.add_parser(
        "policy",
        help="evaluate the policy pack offline against a stack, or a `pulumi stack export` file",
        description="Exit codes: 0 no mandatory violation, 1 mandatory violations, 2 configuration or usage error.",
    )
    policy_cmd.add_argument("stack", nargs="?", help="stack name: renders Pulumi.STACK.yaml under the recording engine")
    policy_cmd.add_argument("--export", type=Path, metavar="FILE", help="evaluate a `pulumi stack export` JSON file instead")
    policy_cmd.add_argument(
        "--config", type=Path, metavar="FILE",
        help="policy pack config (--policy-pack-config format; default for a stack: policies/config/ENV.json)",
    )
    policy_cmd.add_argument("--json", action="store_true", help="print the findings as a JSON array")
    policy_cmd.add_argument("--project-dir", type=Path, help="directory holding Pulumi.yaml (default: found from CWD)")
    policy_cmd.set_defaults(handler=_policy)

    check_cmd = commands.add_parser(
        "check",
        help="send a stack's Kubernetes objects to the cluster in KUBECONFIG as a server-side dry run",
        description="Exit codes: 0 every object accepted, 1 objects rejected, 2 configuration, usage "
                    "or cluster error (no KUBECONFIG, API server unreachable).",
    )
    check_cmd.add_argument("stack", help="stack name: renders Pulumi.STACK.yaml under the recording engine")
    check_cmd.add_argument("--project-dir", type=Path, help="directory holding Pulumi.yaml (default: found from CWD)")
    check_cmd.set_defaults(handler=_check)

    diff_cmd = commands.add_parser(
        "diff",
        help="render two stacks offline and show the settings that differ, grouped by part",
        description="Compares effective settings (profile merged with the stack file) and rendered objects. "
                    "Exit codes: 0 compared (differences or not), 1 a stack renders invalid objects, "
                    "2 configuration or usage error.",
    )
    diff_cmd.add_argument("stack_a", metavar="STACK_A", help="stack name: reads Pulumi.STACK_A.yaml")
    diff_cmd.add_argument("stack_b", metavar="STACK_B", help="stack name: reads Pulumi.STACK_B.yaml")
    diff_cmd.add_argument("--json", action="store_true", help="print the rows as JSON")
    diff_cmd.add_argument("--all", action="store_true", help="also list the settings that agree")
    diff_cmd.add_argument("--project-dir", type=Path, help="directory holding Pulumi.yaml (default: found from CWD)")
    diff_cmd.set_defaults(handler=_diff)

    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, StackFileError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG


def _render(args: argparse.Namespace) -> int:
    from tooling.render import render

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


def _policy(args: argparse.Namespace) -> int:
    from tooling import policy

    if (args.stack is None) == (args.export is None):
        print("error: aquascene policy takes a STACK or --export FILE (exactly one)", file=sys.stderr)
        return EXIT_CONFIG
    started = time.perf_counter()
    try:
        if args.export is not None:
            report = policy.evaluate_export(args.export, args.config)
            title = f"policy {args.export}"
        else:
            project_dir = args.project_dir or find_project_dir()
            report = policy.evaluate_stack(args.stack, project_dir, args.config)
            title = f"policy stack {args.stack}"
    except (policy.PolicyConfigError, policy.PolicyInputError, policy.PolicyEvaluationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(policy.format_json(report))
    else:
        print(policy.format_table(report, title))
        print(f"done in {time.perf_counter() - started:.2f}s")
    return report.exit_code


def _check(args: argparse.Namespace) -> int:
    from tooling import check
    from tooling.render import record_stack
    from tooling.stackfile import load_stack_file

    started = time.perf_counter()
    project_dir = args.project_dir or find_project_dir()
    objects = check.stack_objects(record_stack(load_stack_file(args.stack, project_dir)))
    try:
        cluster = check.Cluster.from_kubeconfig()
    except check.ClusterUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    report = check.check(args.stack, objects, cluster)
    for line in check.format_report(report):
        print(line)
    print(f"done in {time.perf_counter() - started:.2f}s")
    return EXIT_INVALID if report.rejected else EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from tooling import diff

    project_dir = args.project_dir or find_project_dir()
    comparison = diff.compare(args.stack_a, args.stack_b, project_dir)
    if args.json:
        print(diff.format_json(comparison, args.all))
    else:
        for line in diff.format_table(comparison, args.all):
            print(line)
        for stack, count in comparison.invalid.items():
            if count:
                print(f"stack {stack}: {count} rendered objects are invalid (see `aquascene render {stack}`)")
    return EXIT_INVALID if any(comparison.invalid.values()) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
