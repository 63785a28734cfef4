"""Goal T1 (issue 13): a trigger is sent only when it changed. In a project of N scripts with a
route, crons and workers.dev each, against the loopback fake: a no-op apply sends 0 mutating
requests (and reads nothing), and an apply that moves one route to another script sends
exactly one (a PUT)."""
from __future__ import annotations

from pathlib import Path

from benchmarks.goals import Outcome, _import_fake, clean_environment
from benchmarks.measure import DEPLOYER, BenchmarkError, run


def _write(root: Path, scripts: int, moved: bool) -> Path:
    """N scripts, each with a route, crons and workers.dev; ``moved``: script 0's route is
    declared under script 1 instead."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", "account_id: ${CLOUDFLARE_ACCOUNT_ID}", "scripts:"]
    for index in range(scripts):
        name = f"worker-{index:04d}"
        (root / f"{name}.js").write_text(f"addEventListener('fetch', () => {{}}) // {name}\n")
        lines += [f"  {name}:", f"    path: {name}.js", "    routes:"]
        owned = [index] if not moved or index > 1 else ([] if index == 0 else [0, 1])
        lines += [f'      - {{pattern: "w{i}.example.com/*", zone_name: example.com}}' for i in owned]
        if not owned:
            lines[-1] = "    routes: []"
        lines += ['    crons: ["*/30 * * * *"]', "    workers_dev: false"]
    manifest = root / "workers.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def t1_trigger_requests(workdir: Path, scripts: int = 200) -> Outcome:
    fake_cloudflare = _import_fake()
    fake = fake_cloudflare.FakeCloudflare().start()
    try:
        env = clean_environment({**fake.environ(), "CLOUDFLARE_ACCOUNT_ID": fake_cloudflare.FAKE_ACCOUNT})
        root = workdir / "t1"
        manifest = _write(root, scripts, moved=False)
        command = [*DEPLOYER, "apply", "--auto-approve", "--parallelism", "8", "-f", str(manifest)]
        run(command, env=env)  # the first deploy: every script and trigger is created
        fake.clear_requests()
        run(command, env=env)
        noop_mutating, noop_total = fake.mutating_request_count(), fake.count()
        _write(root, scripts, moved=True)
        fake.clear_requests()
        run(command, env=env)
        moved_mutating = fake.mutating_request_count()
        moved_requests = sorted(f"{m} {p}" for (m, p), n in fake.request_counts().items() for _ in range(n))
        owner = next(r.get("script") for r in fake.routes().values() if r["pattern"] == "w0.example.com/*")
    finally:
        fake.stop()
    if owner != "worker-0001":
        raise BenchmarkError(f"T1: route w0.example.com/* should have moved to worker-0001, it is on {owner}")
    ok = (noop_mutating, moved_mutating) == (0, 1)
    return Outcome(
        f"T1 trigger requests: {scripts} scripts, each with a route, crons and workers.dev",
        ok,
        [
            f"  no-op apply: {noop_mutating} mutating request(s), {noop_total} in all (goal: 0 mutating)",
            f"  apply moving one route to another script: {moved_mutating} mutating request(s) (goal: exactly 1): "
            + ", ".join(moved_requests),
        ],
    )
