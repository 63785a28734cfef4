"""P4: one ``deployer apply`` of N workers against the loopback fake vs N ``wrangler deploy`` runs
(one ``wrangler.toml`` per worker, same script files and bindings, same fake).

wrangler is found as ``$WRANGLER``, else ``wrangler`` on PATH; without it (or without node) P4 is
skipped. wrangler 4 asks for more than the tests' fake serves, so ``_wrangler_fake`` adds the few
read endpoints its deploy calls (service lookup, latest deployments, workers.dev subdomain) and
accepts its upload's extra metadata; the deployer's requests go through the fake unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

from benchmarks.generate import ACCOUNT_ID, generate_project
from benchmarks.goals import Outcome, _import_fake, _row, clean_environment, plant_namespaces
from benchmarks.measure import DEPLOYER, BenchmarkError, Sample, interleave, median_seconds, run

P4_RATIO = 50.0
INSTALL_HINT = ("npm install --prefix /tmp/wrangler-bench wrangler, then "
                "WRANGLER=/tmp/wrangler-bench/node_modules/.bin/wrangler python -m benchmarks P4")


def find_wrangler() -> str | None:
    wrangler = os.environ.get("WRANGLER") or shutil.which("wrangler")
    return wrangler if wrangler and shutil.which("node") and os.access(wrangler, os.X_OK) else None


def p4_wrangler(workdir: Path, runs: int, scripts: int = 20) -> Outcome:
    name = f"P4 peer: {scripts} workers, one deployer apply vs {scripts} wrangler deploy runs"
    wrangler = find_wrangler()
    if wrangler is None:
        return Outcome(name, None, [f"  skipped: node and wrangler are needed ({INSTALL_HINT})"])
    project = generate_project(workdir / "p4", scripts=scripts, size=50_000, bindings=3, changed=0,
                               with_state=False, namespace_reference=False)
    configs = _write_wrangler_configs(project.manifest)
    fake = _wrangler_fake().start()
    try:
        plant_namespaces(fake, project)
        env = clean_environment(fake.environ())
        wrangler_env = {**env, "CLOUDFLARE_ACCOUNT_ID": ACCOUNT_ID, "WRANGLER_SEND_METRICS": "false",
                        "HOME": str(workdir / "wrangler-home"), "CI": "1", "NO_COLOR": "1"}

        def deployer() -> Sample:
            shutil.rmtree(project.root / ".deployer", ignore_errors=True)
            before = fake.count("PUT")
            # wrangler deployed the same scripts in between: replacing them is the point here.
            sample = run([*DEPLOYER, "apply", "--auto-approve", "--allow-overwrite", "-f", str(project.manifest)],
                         env=env)
            if fake.count("PUT") - before != scripts:
                raise BenchmarkError(f"P4: deployer should have uploaded {scripts} scripts")
            return sample

        def wrangler_all() -> Sample:
            before = fake.count("PUT")
            samples = [run([wrangler, "deploy"], cwd=config.parent, env=wrangler_env) for config in configs]
            if fake.count("PUT") - before != scripts:
                raise BenchmarkError(f"P4: wrangler should have uploaded {scripts} scripts")
            return Sample(sum(s.seconds for s in samples), max(s.peak_rss_mb for s in samples), 0, b"", b"")

        run([wrangler, "deploy"], cwd=configs[0].parent, env=wrangler_env)  # warm caches, untimed
        samples = interleave({"deployer": deployer, "wrangler": wrangler_all}, runs, warmup=0)
    finally:
        fake.stop()
    deployer_s, wrangler_s = median_seconds(samples["deployer"]), median_seconds(samples["wrangler"])
    ratio = wrangler_s / deployer_s
    per_worker = statistics.median(s.seconds for s in samples["wrangler"]) / scripts
    return Outcome(f"{name}; median of {runs}", ratio >= P4_RATIO, [
        _row(f"{scripts} x wrangler deploy (sequential)", wrangler_s, f"   {per_worker * 1000:.0f} ms per worker"),
        _row("deployer apply --auto-approve", deployer_s),
        f"  deployer is {ratio:.1f}x faster (goal >= {P4_RATIO:.0f}x) {'ok' if ratio >= P4_RATIO else 'MISSED'}",
    ])


def _write_wrangler_configs(manifest_path: Path) -> list[Path]:
    """One wrangler.toml per script of the generated manifest, with the same bindings."""
    import yaml

    manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    configs = []
    for name, script in manifest["scripts"].items():
        directory = manifest_path.parent / "wrangler" / name
        directory.mkdir(parents=True)
        lines = [f'name = "{name}"', f'main = "../../{script["path"]}"', 'compatibility_date = "2024-09-01"',
                 f'account_id = "{manifest["account_id"]}"', "workers_dev = false"]
        texts = [b for b in script.get("bindings", []) if b["type"] == "plain_text"]
        if texts:
            lines += ["", "[vars]", *(f"{b['name']} = {json.dumps(b['text'])}" for b in texts)]
        for binding in script.get("bindings", []):
            if binding["type"] == "kv_namespace":
                lines += ["", "[[kv_namespaces]]", f'binding = "{binding["name"]}"',
                          f'id = "{binding["namespace_id"]}"']
        (directory / "wrangler.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        configs.append(directory / "wrangler.toml")
    return configs


def _wrangler_fake():  # type: ignore[no-untyped-def]
    """The tests' fake plus what ``wrangler deploy`` (v4) reads before and after its upload."""
    fc = _import_fake()

    class WranglerFake(fc.FakeCloudflare):  # type: ignore[misc, name-defined]
        def _route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes,
                   record: Any) -> tuple[Any, dict | None]:
            parts = path.strip("/").split("/")
            if parts[:1] == ["accounts"] and parts[2:3] == ["workers"] and len(parts) >= 5:
                account = self._account(parts[1], path)
                kind, name, rest = parts[3], parts[4], parts[5:]
                script = account.scripts.get(name)
                match kind, method, rest:
                    case "services", "GET", []:
                        if script is None:
                            raise fc.ApiError(404, 10007, "This Worker does not exist on your account.")
                        tag = script["etag"][:32]
                        return {"id": name, "default_environment": {"environment": "production",
                                                                    "script": {"id": name, "tag": tag}}}, None
                    case "scripts", "GET", ["deployments"]:
                        if script is None:
                            return {"deployments": []}, None
                        version = {"version_id": script["etag"][:32], "percentage": 100}
                        return {"deployments": [{"id": script["etag"][32:], "source": "wrangler",
                                                 "strategy": "percentage", "created_on": script["modified_on"],
                                                 "versions": [version]}]}, None
                    case "scripts", _, ["subdomain"]:
                        if script is None:
                            raise fc.ApiError(404, 10007, "workers.api.error.script_not_found")
                        return {"enabled": False, "previews_enabled": False}, None
                    case "scripts", "PUT", [] if not _is_deployer_upload(headers):
                        return _store_wrangler_upload(fc, account, name, headers, body, record), None
            return super()._route(method, path, query, headers, body, record)

    return WranglerFake()


def _is_deployer_upload(headers: Any) -> bool:
    return str(headers.get("User-Agent", "")).startswith("deployer/")


def _store_wrangler_upload(fc: Any, account: Any, name: str, headers: Any, body: bytes, record: Any) -> dict:
    parts = fc._multipart(headers, body)
    record.parts = parts
    metadata = json.loads(parts["metadata"].data)
    main = metadata.get("body_part") or metadata.get("main_module")
    if main not in parts:
        raise fc.ApiError(400, 10021, "the upload has no part for its main module")
    content = parts[main].data
    etag = hashlib.sha256(content).hexdigest()
    account.scripts[name] = {"content": content, "metadata": metadata, "bindings": metadata.get("bindings", []),
                             "secrets": {}, "etag": etag, "created_on": "2024-01-01T00:00:00.000000Z",
                             "modified_on": "2024-01-01T00:00:00.000000Z"}
    return {"id": name, "etag": etag, "has_modules": "main_module" in metadata}
