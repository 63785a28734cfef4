"""``python -m benchmarks [P1 ... P7 T1 growth assets] [--runs N] ...``, from the repository root.

Runs the chosen goals (all by default), prints medians and ratios, and exits 1 when a goal is
missed (2 when a benchmark could not run at all). A skipped goal (P4 without node/wrangler)
does not fail the run.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from benchmarks import assets, goals, peer, scale, triggers
from benchmarks.measure import BenchmarkError, compile_bytecode

GOALS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "T1", "growth", "assets")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("goals", nargs="*", metavar="GOAL", help=f"any of {', '.join(GOALS)} (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="measured runs per subject (default 5)")
    parser.add_argument("--scripts", type=int, default=1000, help="P1: scripts in the project (default 1000)")
    parser.add_argument("--apply-scripts", type=int, default=200, help="P2: new scripts (default 200)")
    parser.add_argument("--peer-scripts", type=int, default=20, help="P4: workers (default 20)")
    parser.add_argument("--growth", action="store_true", help="also run the growth check (same as naming it)")
    parser.add_argument("--growth-sizes", default="100,1000,5000", help="N for the growth check")
    parser.add_argument("--keep", action="store_true", help="keep the generated projects (path printed)")
    args = parser.parse_args(argv)
    chosen = [g.upper() if g.lower() not in ("growth", "assets") else g.lower() for g in args.goals]
    unknown = sorted(set(chosen) - set(GOALS))
    if unknown:
        parser.error(f"unknown goal(s) {', '.join(unknown)}; choose from {', '.join(GOALS)}")
    if args.growth and "growth" not in chosen:
        chosen.append("growth")
    if not args.goals:
        chosen = list(GOALS)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    print(describe_machine(), flush=True)
    compile_bytecode()
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-"))
    outcomes = []
    try:
        for goal in GOALS:
            if goal not in chosen:
                continue
            match goal:
                case "P1":
                    outcome = goals.p1_plan(workdir, args.runs, scripts=args.scripts)
                case "P2":
                    outcome = goals.p2_apply(workdir, args.runs, scripts=args.apply_scripts)
                case "P3":
                    outcome = goals.p3_startup(workdir, max(args.runs, 10))
                case "P4":
                    outcome = peer.p4_wrangler(workdir, min(args.runs, 3), scripts=args.peer_scripts)
                case "P5":
                    outcome = scale.p5_budget(workdir)
                case "P6":
                    outcome = scale.p6_memory(workdir)
                case "P7":
                    outcome = scale.p7_refresh(workdir)
                case "T1":
                    outcome = triggers.t1_trigger_requests(workdir, scripts=args.apply_scripts)
                case "assets":
                    outcome = assets.assets_goal(workdir, min(args.runs, 3))
                case _:
                    sizes = tuple(int(n) for n in args.growth_sizes.split(","))
                    outcome = goals.plan_growth(workdir, args.runs, sizes)
            outcomes.append(outcome)
            print(f"\n{outcome.name}: {outcome.verdict}", flush=True)
            for line in outcome.lines:
                print(line, flush=True)
    except BenchmarkError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"\nprojects kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    missed = [o.name.split(":")[0] for o in outcomes if o.passed is False]
    print("\n" + (f"missed: {', '.join(missed)}" if missed else "every goal that ran was met"))
    return 1 if missed else 0


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            cpu = next((line.split(":", 1)[1].strip() for line in stream if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = []
    for package in ("typer", "PyYAML", "jsonschema", "requests"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} missing")
    import yaml

    libyaml = "with libyaml" if getattr(yaml, "__with_libyaml__", False) else "WITHOUT libyaml"
    return (f"machine: {cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; {', '.join(versions)} ({libyaml})")


if __name__ == "__main__":
    sys.exit(main())
