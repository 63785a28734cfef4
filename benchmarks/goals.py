"""The goals of issue 4, each a ratio of medians measured in one run: P1 plan, P2 apply, P3
start-up, the plan growth check (P4, the wrangler comparison, is in ``peer``; issue 16's budget,
memory and refresh goals are in ``scale``). Issue 16 raised P2 and P3.

Every goal function returns an ``Outcome``; the printed lines are the figures to quote.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.generate import generate_project
from benchmarks.measure import DEPLOYER, BenchmarkError, Sample, interleave, median_seconds, peak_mb, run

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = REPO / "sample-project" / "workers.yaml"

P1_RATIO, P1_PEAK_MB = 1.5, 150.0
P2_RATIO = 1.15
P2_READS = 2  # reads before the uploads that the ideal allows for, at most
P3_RATIO = 1.2
GROWTH_RATIO = 1.5  # per-script cost at the largest N over the per-script cost at the smaller N


@dataclass
class Outcome:
    name: str
    passed: bool | None  # None: skipped
    lines: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISSED", None: "SKIPPED"}[self.passed]


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any real Cloudflare credentials or base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env.pop("DEPLOYER_DEBUG", None)
    env.update(extra or {})
    return env


def _row(label: str, seconds: float, extra: str = "") -> str:
    return f"  {label:<44} {seconds * 1000:8.1f} ms{extra}"


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --- P1 ----------------------------------------------------------------------------------


def p1_plan(workdir: Path, runs: int, scripts: int = 1000, size: int = 50_000) -> Outcome:
    project = generate_project(workdir / "p1", scripts=scripts, size=size, bindings=3, changed=1)
    env = clean_environment()
    manifest = str(project.manifest)

    def plan() -> Sample:
        return run([*DEPLOYER, "plan", "--format", "json", "-f", manifest], env=env)

    def floor() -> Sample:
        return run([sys.executable, str(REPO / "benchmarks" / "floor_plan.py"), manifest], env=env)

    samples = interleave({"floor": floor, "plan": plan}, runs)
    summary = json.loads(samples["plan"][0].stdout)["summary"]
    if (summary["update"], summary["no-op"], summary["create"]) != (1, scripts, 0):  # + the namespace
        raise BenchmarkError(f"P1: the plan should update 1 script and leave the rest alone, got {summary}")
    floor_s, plan_s = median_seconds(samples["floor"]), median_seconds(samples["plan"])
    ratio, peak = plan_s / floor_s, peak_mb(samples["plan"])
    ok_ratio, ok_peak = ratio <= P1_RATIO, peak <= P1_PEAK_MB
    return Outcome(
        f"P1 plan: {scripts} scripts x {size // 1000} KB, 3 bindings each, 1 changed; median of {runs}",
        ok_ratio and ok_peak,
        [
            _row("floor: libyaml + jsonschema + sha256", floor_s,
                 f"   peak RSS {peak_mb(samples['floor']):6.1f} MB"),
            _row("deployer plan --format json", plan_s, f"   peak RSS {peak:6.1f} MB"),
            f"  ratio {ratio:.2f} (goal <= {P1_RATIO}) {_mark(ok_ratio)}; "
            f"peak RSS {peak:.1f} MB (goal <= {P1_PEAK_MB:.0f} MB) {_mark(ok_peak)}",
        ],
    )


# --- P2 ----------------------------------------------------------------------------------


def p2_apply(workdir: Path, runs: int, scripts: int = 200, parallelism: int = 8,
             latency: float = 0.05, size: int = 50_000) -> Outcome:
    """Apply ``scripts`` new scripts against the fake with ``latency`` per request, measured
    against the network's floor plus start-up: ceil(scripts / parallelism) rounds of uploads,
    one latency for each read made before the first upload (at most two), and ``deployer
    validate`` of a one-script project (interpreter, imports, one manifest). Shown beside it,
    not judged: ``floor_apply.py``, the same uploads by a bare client of the same libraries."""
    fake_cloudflare = _import_fake()
    project = generate_project(workdir / "p2", scripts=scripts, size=size, bindings=3, changed=0,
                               with_state=False, namespace_reference=False)
    one = generate_project(workdir / "p2-one", scripts=1, size=size, bindings=3, changed=0,
                           with_state=False, namespace_reference=False)
    fake = fake_cloudflare.FakeCloudflare().start()
    reads: list[int] = []
    try:
        plant_namespaces(fake, project)
        fake.latency = latency
        env = clean_environment(fake.environ())
        command = [*DEPLOYER, "apply", "--auto-approve", "--parallelism", str(parallelism),
                   "-f", str(project.manifest)]

        def uploads(what: str, upload_command: list[str]) -> Sample:
            """Run ``upload_command`` with every script new, here and in the fake (or apply rightly
            refuses to overwrite them), and check it made every upload."""
            shutil.rmtree(project.root / ".deployer", ignore_errors=True)
            fake.scripts().clear()
            fake.clear_requests()
            sample = run(upload_command, env=env)
            if fake.count("PUT") != scripts:
                raise BenchmarkError(f"{what}: expected {scripts} uploads, got {fake.count('PUT')}")
            return sample

        def apply() -> Sample:
            sample = uploads("P2", command)
            first_upload = min(r.started for r in fake.find("PUT"))
            reads.append(sum(1 for r in fake.requests if r.method == "GET" and r.started < first_upload))
            return sample

        def validate() -> Sample:
            return run([*DEPLOYER, "validate", "-f", str(one.manifest)], env=env)

        def floor() -> Sample:
            return uploads("P2 floor", [sys.executable, str(REPO / "benchmarks" / "floor_apply.py"),
                                        str(project.manifest)])

        samples = interleave({"apply": apply, "validate": validate, "floor": floor}, runs)
    finally:
        fake.stop()
    apply_s, validate_s = median_seconds(samples["apply"]), median_seconds(samples["validate"])
    floor_s = median_seconds(samples["floor"])
    rounds, before = math.ceil(scripts / parallelism), min(max(reads), P2_READS)
    ideal = (rounds + before) * latency
    budget = P2_RATIO * (ideal + validate_s)
    ratio = apply_s / (ideal + validate_s)
    return Outcome(
        f"P2 apply: {scripts} new scripts x {size // 1000} KB, --parallelism {parallelism}, "
        f"{latency * 1000:.0f} ms per request; median of {runs}",
        ratio <= P2_RATIO,
        [
            _row(f"ideal: (ceil({scripts}/{parallelism}) + {before} read(s) first) x {latency * 1000:.0f} ms", ideal),
            _row("start-up: deployer validate, one script", validate_s),
            _row("deployer apply --auto-approve", apply_s, f"   peak RSS {peak_mb(samples['apply']):6.1f} MB"),
            _row("floor: bare client, no checks (not judged)", floor_s,
                 f"   ratio {floor_s / (ideal + validate_s):.2f}; deployer {(apply_s - floor_s) * 1000:+.0f} ms"),
            f"  ratio {ratio:.2f} to ideal + start-up (goal <= {P2_RATIO}; budget {budget * 1000:.0f} ms) "
            f"{_mark(ratio <= P2_RATIO)}",
        ],
    )


def plant_namespaces(fake: Any, project: Any) -> None:
    """Make the KV namespaces a generated project binds exist in ``fake``."""
    for namespace_id in project.namespace_ids:
        fake.kv_namespaces()[namespace_id] = f"benchmark-{namespace_id[:8]}"


def _import_fake():  # type: ignore[no-untyped-def]
    """The loopback fake the end-to-end tests use (one fake to keep honest, not two)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        from tests import fake_cloudflare
    except ImportError as exc:
        raise BenchmarkError(f"P2/P4 need tests/fake_cloudflare.py and the test extra "
                             f"(pip install -e '.[test]'): {exc}") from exc
    return fake_cloudflare


# --- P3 ----------------------------------------------------------------------------------

# Neither the HTTP client nor the PostgreSQL driver (the file state needs neither).
_REQUEST_MODULES = ("requests", "urllib3", "deployer.cloudflare.transport", "psycopg", "psycopg_binary",
                    "deployer.state.postgres")
_IMPORT_PROBE = (
    "import sys\n"
    "from deployer.cli.app import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    f"print('imported:' + ','.join(m for m in {_REQUEST_MODULES!r} if m in sys.modules))\n"
)


def p3_startup(workdir: Path, runs: int) -> Outcome:
    env = clean_environment()

    def floor() -> Sample:
        return run([sys.executable, "-c", "import yaml, jsonschema, typer"], env=env)

    def validate() -> Sample:
        return run([*DEPLOYER, "validate", "-f", str(SAMPLE_MANIFEST)], env=env)

    samples = interleave({"floor": floor, "validate": validate}, runs, warmup=2)
    floor_s, validate_s = median_seconds(samples["floor"]), median_seconds(samples["validate"])
    ratio = validate_s / floor_s
    leaked = {}
    for command in ("validate", "plan"):
        probe = run([sys.executable, "-c", _IMPORT_PROBE, command, "-f", str(SAMPLE_MANIFEST)], env=env)
        marker = [line for line in probe.stdout.decode().splitlines() if line.startswith("imported:")]
        names = marker[-1].removeprefix("imported:") if marker else "(the probe printed nothing)"
        if names:
            leaked[command] = names
    return Outcome(
        f"P3 start-up: deployer validate on sample-project/; median of {runs}",
        ratio <= P3_RATIO and not leaked,
        [
            _row('floor: python -c "import yaml, jsonschema, typer"', floor_s),
            _row("deployer validate -f sample-project/workers.yaml", validate_s),
            f"  ratio {ratio:.2f} (goal <= {P3_RATIO}) {_mark(ratio <= P3_RATIO)}; "
            f"HTTP or PostgreSQL modules imported by validate/plan: {leaked or 'none'}",
        ],
    )


# --- growth ------------------------------------------------------------------------------


def plan_growth(workdir: Path, runs: int, sizes: tuple[int, ...] = (100, 1000, 5000),
                size: int = 50_000) -> Outcome:
    env = clean_environment()
    projects = {n: generate_project(workdir / f"growth-{n}", scripts=n, size=size, changed=1) for n in sizes}

    def planner(n: int):  # type: ignore[no-untyped-def]
        return lambda: run([*DEPLOYER, "plan", "--format", "json", "-f", str(projects[n].manifest)], env=env)

    samples = interleave({str(n): planner(n) for n in sizes}, runs)
    medians = {n: median_seconds(samples[str(n)]) for n in sizes}
    lines = [_row(f"plan, {n} scripts", medians[n],
                  f"   peak RSS {peak_mb(samples[str(n)]):6.1f} MB") for n in sizes]
    # Start-up is a constant; what must stay flat is the cost each further script adds.
    marginal = [
        (medians[b] - medians[a]) / (b - a) for a, b in zip(sizes, sizes[1:])
    ]
    for (a, b), cost in zip(zip(sizes, sizes[1:]), marginal):
        lines.append(f"  per extra script from {a} to {b}: {cost * 1e6:7.1f} us")
    ratio = marginal[-1] / marginal[0] if marginal[0] > 0 else math.inf
    lines.append(f"  per-script cost ratio {ratio:.2f} (linear ~1; goal <= {GROWTH_RATIO}) "
                 f"{_mark(ratio <= GROWTH_RATIO)}")
    return Outcome(f"Growth: plan --format json at N = {', '.join(map(str, sizes))}; median of {runs}",
                   ratio <= GROWTH_RATIO, lines)
