"""Issue 16's goals at scale: P5 the budget-bound apply, P6 memory, P7 ``plan --refresh``.

P5 and P6 measure against a bound or a limit rather than a floor run beside them: P5's bound is
what the request budget allows (a minute of waiting dwarfs the noise), P6's are peak RSS limits.
P7 counts requests. Each runs once.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from benchmarks.generate import ACCOUNT_ID, generate_project
from benchmarks.goals import Outcome, _import_fake, _mark, _row, clean_environment, plant_namespaces
from benchmarks.measure import DEPLOYER, BenchmarkError, run

P5_RATIO = 1.1
P6_PLAN_MB, P6_APPLY_MB = 80.0, 150.0
_SCRIPT_PATH = re.compile(r"^/accounts/[^/]+/workers/scripts/([^/]+)(/.*)?$")


# --- P5 ----------------------------------------------------------------------------------


def p5_budget(workdir: Path, scripts: int = 300, limit: int = 120, window: float = 30.0, parallelism: int = 8,
              latency: float = 0.05) -> Outcome:
    """Apply ``scripts`` new scripts with ``--rate-limit limit/window`` against a fake that
    answers 429 beyond ``limit`` requests in any ``window`` seconds. The bound: the first
    ``limit`` requests at once, then ``limit`` per window."""
    project = generate_project(workdir / "p5", scripts=scripts, size=50_000, bindings=3, changed=0,
                               with_state=False, namespace_reference=False)
    fake = _import_fake().FakeCloudflare().start()
    try:
        plant_namespaces(fake, project)
        fake.latency = latency
        fake.limit_rate(limit, window)
        sample = run([*DEPLOYER, "apply", "--auto-approve", "--parallelism", str(parallelism), "--rate-limit",
                      f"{limit}/{window:g}", "-f", str(project.manifest)], env=clean_environment(fake.environ()))
        requests, refused = fake.count(), sum(1 for r in fake.requests if r.status == 429)
        if fake.count("PUT") - refused < scripts:
            raise BenchmarkError(f"P5: expected {scripts} uploads, got {fake.count('PUT')} ({refused} refused)")
    finally:
        fake.stop()
    if requests <= limit:
        raise BenchmarkError(f"P5: {requests} requests never reach the limit of {limit}; nothing to measure")
    bound = (math.ceil(requests / limit) - 1) * window
    ratio = sample.seconds / bound
    ok = ratio <= P5_RATIO and refused == 0
    return Outcome(
        f"P5 budget: {scripts} new scripts, --rate-limit {limit}/{window:g} against a fake refusing more, "
        f"--parallelism {parallelism}, {latency * 1000:.0f} ms per request; one run",
        ok,
        [
            _row(f"bound: {requests} requests, {limit} at once then {limit} per {window:g} s", bound),
            _row("deployer apply --auto-approve", sample.seconds),
            (f"  ratio {ratio:.3f} (goal <= {P5_RATIO}) {_mark(ratio <= P5_RATIO)}; "
             f"429s received: {refused} (goal 0) {_mark(refused == 0)}"),
        ],
    )


# --- P6 ----------------------------------------------------------------------------------


def p6_memory(workdir: Path, plan_scripts: int = 5000, apply_scripts: int = 1000, apply_size: int = 1_000_000,
              parallelism: int = 8) -> Outcome:
    """Peak RSS of ``plan`` of ``plan_scripts`` scripts (50 KB each, state up to date but one)
    and of ``apply`` of ``apply_scripts`` new scripts of ``apply_size`` bytes each."""
    planned = generate_project(workdir / "p6-plan", scripts=plan_scripts, size=50_000, changed=1)
    plan = run([*DEPLOYER, "plan", "--format", "json", "-f", str(planned.manifest)], env=clean_environment())
    if json.loads(plan.stdout)["summary"]["update"] != 1:
        raise BenchmarkError("P6: the plan should update exactly one script")
    applied = generate_project(workdir / "p6-apply", scripts=apply_scripts, size=apply_size, changed=0,
                               with_state=False, namespace_reference=False)
    fake = _forgetful_fake()
    try:
        plant_namespaces(fake, applied)
        apply = run([*DEPLOYER, "apply", "--auto-approve", "--parallelism", str(parallelism),
                     "-f", str(applied.manifest)], env=clean_environment(fake.environ()))
        if fake.uploaded != apply_scripts:
            raise BenchmarkError(f"P6: expected {apply_scripts} uploads, got {fake.uploaded}")
    finally:
        fake.stop()
    ok_plan, ok_apply = plan.peak_rss_mb <= P6_PLAN_MB, apply.peak_rss_mb <= P6_APPLY_MB
    return Outcome(
        f"P6 memory: plan of {plan_scripts} scripts; apply of {apply_scripts} new scripts x "
        f"{apply_size // 1_000_000} MB, --parallelism {parallelism}; one run each",
        ok_plan and ok_apply,
        [
            _row(f"deployer plan --format json, {plan_scripts} scripts", plan.seconds,
                 f"   peak RSS {plan.peak_rss_mb:6.1f} MB (goal <= {P6_PLAN_MB:.0f} MB) {_mark(ok_plan)}"),
            _row(f"deployer apply, {apply_scripts} x {apply_size // 1_000_000} MB", apply.seconds,
                 f"   peak RSS {apply.peak_rss_mb:6.1f} MB (goal <= {P6_APPLY_MB:.0f} MB) {_mark(ok_apply)}"),
        ],
    )


def _forgetful_fake() -> Any:
    """The tests' fake, judging every upload as usual but keeping none of them (a gigabyte of
    scripts would otherwise sit in this process): only deployer's memory is measured."""
    fc = _import_fake()

    class ForgetfulFake(fc.FakeCloudflare):  # type: ignore[misc, name-defined]
        uploaded = 0

        def _upload(self, account: Any, scripts: dict[str, dict], name: str, *args: Any) -> dict:
            answer: dict = super()._upload(account, scripts, name, *args)
            scripts.pop(name, None)
            account.workers.pop(name, None)
            self.uploaded += 1
            return answer

    fake = ForgetfulFake()
    fake.max_recorded_requests = 20  # each record keeps its upload's parts
    return fake.start()


# --- P7 ----------------------------------------------------------------------------------


def p7_refresh(workdir: Path, scripts: int = 1000, changed: int = 20, latency: float = 0.05) -> Outcome:
    """``plan --refresh`` of ``scripts`` deployed scripts, ``changed`` of them edited outside
    deployer: the script list is read once, and only the edited scripts are read further, several
    at a time."""
    project = generate_project(workdir / "p7", scripts=scripts, size=5_000, bindings=3, changed=0,
                               with_state=False, namespace_reference=False)
    fake = _import_fake().FakeCloudflare().start()
    try:
        plant_namespaces(fake, project)
        env = clean_environment(fake.environ())
        run([*DEPLOYER, "apply", "--auto-approve", "--parallelism", "8", "-f", str(project.manifest)], env=env)
        edited = set(project.scripts[:changed])
        for name in edited:
            fake.add_script(name, b"addEventListener('fetch', () => {}) // edited in the dashboard\n")
        fake.latency = latency
        fake.clear_requests()
        sample = run([*DEPLOYER, "plan", "--refresh", "--format", "json", "-f", str(project.manifest)], env=env)
        lists = fake.count("GET", f"/accounts/{ACCOUNT_ID}/workers/scripts")
        further = [(r, m.group(1)) for r in fake.requests if (m := _SCRIPT_PATH.match(r.path))]
        total = fake.count()
    finally:
        fake.stop()
    drifted = [c["name"] for c in json.loads(sample.stdout)["changes"] if "drift" in c.get("reasons", [])]
    if set(drifted) != edited:
        raise BenchmarkError(f"P7: the plan should show drift in the {changed} edited scripts, got {len(drifted)}")
    read = {name for _, name in further}
    at_once = _most_at_once([(r.started, r.answered or r.started) for r, _ in further])
    ok_list, ok_read = lists == 1, read <= edited
    ok_parallel = len(further) < 2 or at_once >= 2
    return Outcome(
        f"P7 refresh: plan --refresh of {scripts} scripts, {changed} edited outside deployer, "
        f"{latency * 1000:.0f} ms per request; one run",
        ok_list and ok_read and ok_parallel,
        [
            _row("deployer plan --refresh --format json", sample.seconds, f"   {total} requests"),
            (f"  script list read {lists} time(s) (goal 1) {_mark(ok_list)}; scripts read further: {len(read)}, "
             f"{len(read - edited)} of them not edited (goal 0) {_mark(ok_read)}"),
            (f"  further reads: {len(further)}, at most {at_once} at once "
             f"(goal: more than one when there are several) {_mark(ok_parallel)}"),
        ],
    )


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` spans open at one moment."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most
