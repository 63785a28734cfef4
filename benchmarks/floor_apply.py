"""P2's floor: the least an apply does with the design card's libraries, and nothing of deployer.

    CLOUDFLARE_API_BASE_URL=... CLOUDFLARE_API_TOKEN=... python benchmarks/floor_apply.py workers.yaml

Imports typer, PyYAML, jsonschema and requests (what deployer's apply imports from outside) and
parses the manifest with libyaml, but checks nothing: validating it with jsonschema alone takes
longer than all of deployer's checks (benchmarks/README.md, P2). Reads the account's script list
once and refuses a name it holds, then uploads every script (its file read and sha256'd, one
multipart PUT) on 8 threads, each writing one fdatasync'd journal line per answer before its next
upload. No plan, no state model, no diagnostics, no progress: what is left of an apply when only
the libraries, the network and crash safety remain. It imports nothing from deployer.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import jsonschema  # noqa: F401 - imported, as deployer's apply imports it; not used (see above)
import requests
import typer  # noqa: F401 - deployer is a typer program: its import is part of any start-up
import yaml

PARALLELISM = 8


def main(manifest_path: str) -> int:
    manifest = Path(manifest_path)
    data = yaml.load(manifest.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    base = os.environ["CLOUDFLARE_API_BASE_URL"].rstrip("/") + f"/accounts/{data['account_id']}/workers/scripts"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {os.environ['CLOUDFLARE_API_TOKEN']}"
    adapter = requests.adapters.HTTPAdapter(pool_connections=PARALLELISM, pool_maxsize=PARALLELISM, pool_block=True)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    listed = session.get(base, timeout=30)
    listed.raise_for_status()
    existing = {item["id"] for item in listed.json()["result"]} & set(data["scripts"])
    if existing:
        raise SystemExit(f"refusing to overwrite {sorted(existing)}")
    journal_dir = manifest.parent / ".deployer"
    journal_dir.mkdir(exist_ok=True)
    journal = os.open(journal_dir / "floor.journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    names = iter(data["scripts"].items())
    lock = threading.Lock()
    failures: list[str] = []

    def upload(name: str, script: dict[str, Any]) -> None:
        body = (manifest.parent / script["path"]).read_bytes()
        digest = hashlib.sha256(body).hexdigest()
        # A generated project's bindings are written as Cloudflare takes them (type, name, one value).
        metadata = json.dumps({"body_part": "script", "bindings": script.get("bindings", [])})
        answer = session.put(f"{base}/{name}", timeout=120, files=[
            ("metadata", (None, metadata, "application/json")),
            ("script", ("worker.js", body, "application/javascript")),
        ])
        answer.raise_for_status()
        line = json.dumps({"name": name, "sha256": digest, "etag": answer.json()["result"].get("etag")}) + "\n"
        with lock:
            os.write(journal, line.encode())
            os.fdatasync(journal)

    def work() -> None:
        while not failures:
            with lock:
                taken = next(names, None)
            if taken is None:
                return
            try:
                upload(*taken)
            except Exception as exc:  # noqa: BLE001 - reported by main
                failures.append(f"{taken[0]}: {exc}")

    threads = [threading.Thread(target=work) for _ in range(PARALLELISM)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    os.close(journal)
    if failures:
        raise SystemExit("; ".join(failures))
    print(f"{len(data['scripts'])} scripts uploaded")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
