"""Goal ``assets`` (issue 18): plan and apply a Worker with 10,000 small asset files against
the loopback fake. Reported: a cold plan (every file hashed), the first apply (every file
uploaded), a changed file, and a rerun with nothing changed; the goal is that the rerun
(``apply`` that finds no change: hashing from the cache, no request) costs at most
``RERUN_EXTRA_S`` more than a plan of the same project without assets.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.goals import Outcome, _import_fake, _mark, _row, clean_environment
from benchmarks.measure import DEPLOYER, BenchmarkError, Sample, interleave, median_seconds, peak_mb, run

RERUN_EXTRA_S = 0.5  # "well under a second" more than a plan without assets
ACCOUNT = "0123456789abcdef0123456789abcdef"


def _project(root: Path, files: int) -> tuple[Path, Path]:
    """The manifest with assets and the same one without (one directory, one script)."""
    public = root / "public"
    for index in range(files):
        folder = public / f"section-{index % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"page-{index:05d}.html").write_text(f"<h1>page {index}</h1>\n" + "<p>lorem ipsum</p>\n" * 20)
    (root / "index.js").write_text("export default { fetch(r, env) { return env.ASSETS.fetch(r) } }\n")
    head = f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  site:\n    path: index.js\n    format: modules\n" \
           "    compatibility_date: \"2024-09-23\"\n"
    with_assets, without = root / "workers.yaml", root / "code-only.yaml"
    with_assets.write_text(head + "    assets: {directory: public, binding: ASSETS}\n")
    without.write_text(head)
    return with_assets, without


def assets_goal(workdir: Path, runs: int, files: int = 10_000) -> Outcome:
    fake_cloudflare = _import_fake()
    root = workdir / "assets"
    manifest, code_only = _project(root, files)
    fake = fake_cloudflare.FakeCloudflare().start()
    fake.assets_per_bucket = 100  # Cloudflare's buckets hold many small files
    env = clean_environment(fake.environ())
    apply_command = [*DEPLOYER, "apply", "--auto-approve", "-f", str(manifest)]
    try:
        def cold_plan() -> Sample:
            shutil.rmtree(root / ".deployer", ignore_errors=True)  # no hash cache, no state
            return run([*DEPLOYER, "plan", "-f", str(manifest)], env=env)

        def first_apply() -> Sample:
            shutil.rmtree(root / ".deployer", ignore_errors=True)
            fake.scripts().clear()
            fake.asset_hashes().clear()
            fake.clear_requests()
            sample = run(apply_command, env=env)
            if len(fake.asset_hashes()) != files:
                raise BenchmarkError(f"assets: the first apply should upload {files} files, "
                                     f"Cloudflare holds {len(fake.asset_hashes())}")
            return sample

        def rerun() -> Sample:
            before = fake.count()
            sample = run(apply_command, env=env)
            if fake.count() != before or b"No changes" not in sample.stdout:
                raise BenchmarkError("assets: a rerun with nothing changed should make no request")
            return sample

        def plan_without_assets() -> Sample:
            return run([*DEPLOYER, "plan", "-f", str(code_only), "--state", str(root / "code-only.state.json")],
                       env=env)

        def one_changed() -> Sample:
            page = root / "public" / "section-00" / "page-00000.html"
            page.write_text(page.read_text() + "<!-- edited -->\n")
            fake.clear_requests()
            sample = run(apply_command, env=env)
            if fake.request_counts().get(("POST", "/accounts/{account_id}/workers/assets/upload")) != 1:
                raise BenchmarkError("assets: one changed file should be one bucket upload")
            return sample

        cold = interleave({"cold plan": cold_plan}, runs)
        first = interleave({"first apply": first_apply}, runs)
        steady = interleave({"rerun": rerun, "plan without assets": plan_without_assets,
                             "one changed file": one_changed}, runs)
    finally:
        fake.stop()
    rerun_s = median_seconds(steady["rerun"])
    floor_s = median_seconds(steady["plan without assets"])
    extra = rerun_s - floor_s
    ok = extra <= RERUN_EXTRA_S
    return Outcome(
        f"assets: one Worker with {files} asset files of ~400 bytes, 100 a bucket; median of {runs}",
        ok,
        [
            _row("plan, cold (every file hashed)", median_seconds(cold["cold plan"]),
                 f"   peak RSS {peak_mb(cold['cold plan']):6.1f} MB"),
            _row("apply, first (every file uploaded)", median_seconds(first["first apply"]),
                 f"   peak RSS {peak_mb(first['first apply']):6.1f} MB"),
            _row("apply, one file changed (one bucket)", median_seconds(steady["one changed file"])),
            _row("apply, nothing changed (no request)", rerun_s),
            _row("plan of the same Worker without assets", floor_s),
            f"  a rerun costs {extra * 1000:.0f} ms more than a plan without assets "
            f"(goal <= {RERUN_EXTRA_S * 1000:.0f} ms) {_mark(ok)}",
        ],
    )
