"""End to end, a team moving from wrangler: a project deployed by wrangler (planted in the loopback
fake through the API, exactly as wrangler uploads it) is converted with init --from-wrangler,
adopted with import --all --trust-secrets, and the next plan --refresh shows zero changes."""
from __future__ import annotations

import json
from pathlib import Path

import requests

from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FAKE_TOKEN, FakeCloudflare

SECRET = "wrangler-secret-canary-41c9"
SCRIPTS_URL = f"/accounts/{FAKE_ACCOUNT}/workers/scripts"

SHOP_TOML = f"""\
name = "shop"
main = "src/index.js"
compatibility_date = "2024-09-23"
compatibility_flags = ["nodejs_compat"]
account_id = "{FAKE_ACCOUNT}"
no_bundle = true
find_additional_modules = true

[vars]
GREETING = "Hello"

[secrets]
required = ["API_KEY"]

[[kv_namespaces]]
binding = "CARTS"
id = "{{namespace_id}}"
"""
SHOP_INDEX = b'import { total } from "./lib/cart.js";\n\nexport default {\n  async fetch(request, env) {\n' \
             b'    return new Response(`${env.GREETING}: ${await total(env.CARTS)}`);\n  },\n};\n'
SHOP_CART = b'export async function total(kv) {\n  return Number((await kv.get("total")) ?? 0);\n}\n'
LEGACY_TOML = f'name = "legacy"\nmain = "worker.js"\naccount_id = "{FAKE_ACCOUNT}"\n\n[vars]\nMESSAGE = "moved"\n'
LEGACY_WORKER = b'addEventListener("fetch", (event) => event.respondWith(new Response(MESSAGE)));\n'


def _wrangler_upload(fake: FakeCloudflare, name: str, metadata: dict, parts: list[tuple[str, str, bytes]]) -> None:
    """PUT a script the way wrangler's create-worker-upload-form does: the metadata as a plain
    string field (text/plain), then one file part per module, named by its path (main first)."""
    boundary = "----formdata-undici-041797428871"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n'
            f"Content-Type: text/plain;charset=UTF-8\r\n\r\n").encode() + json.dumps(metadata).encode() + b"\r\n"
    for part, content_type, data in parts:
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"; filename="{part}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    answer = requests.put(f"{fake.base_url}{SCRIPTS_URL}/{name}", data=body, timeout=10, headers={
        "Authorization": f"Bearer {FAKE_TOKEN}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert answer.status_code == 200, answer.text


def _wrangler_secret_put(fake: FakeCloudflare, script: str, name: str, value: str) -> None:
    answer = requests.put(f"{fake.base_url}{SCRIPTS_URL}/{script}/secrets", timeout=10,
                          json={"name": name, "text": value, "type": "secret_text"},
                          headers={"Authorization": f"Bearer {FAKE_TOKEN}"})
    assert answer.status_code == 200, answer.text


def _deployed_by_wrangler(tmp_path: Path, fake: FakeCloudflare) -> Path:
    """A wrangler project on disk and, in the fake, what `wrangler deploy` + `wrangler secret put` left."""
    namespace_id = fake.add_kv_namespace("shop-carts")
    project = tmp_path / "shop"
    (project / "src" / "lib").mkdir(parents=True)
    (project / "legacy").mkdir()
    (project / "wrangler.toml").write_text(SHOP_TOML.replace("{namespace_id}", namespace_id))
    (project / "src" / "index.js").write_bytes(SHOP_INDEX)
    (project / "src" / "lib" / "cart.js").write_bytes(SHOP_CART)
    (project / "legacy" / "wrangler.toml").write_text(LEGACY_TOML)
    (project / "legacy" / "worker.js").write_bytes(LEGACY_WORKER)
    keep = ["secret_text", "secret_key"]  # wrangler deploy keeps secrets set by `wrangler secret put`
    _wrangler_upload(fake, "shop", {
        "main_module": "index.js",
        "bindings": [{"name": "GREETING", "type": "plain_text", "text": "Hello"},
                     {"name": "CARTS", "type": "kv_namespace", "namespace_id": namespace_id}],
        "compatibility_date": "2024-09-23", "compatibility_flags": ["nodejs_compat"], "keep_bindings": keep,
    }, [("index.js", "application/javascript+module", SHOP_INDEX),
        ("lib/cart.js", "application/javascript+module", SHOP_CART)])
    _wrangler_secret_put(fake, "shop", "API_KEY", SECRET)
    _wrangler_upload(fake, "legacy", {
        "body_part": "worker.js", "bindings": [{"name": "MESSAGE", "type": "plain_text", "text": "moved"}],
        "keep_bindings": keep,
    }, [("worker.js", "application/javascript", LEGACY_WORKER)])
    fake.clear_requests()
    return project


def test_a_wrangler_project_is_converted_imported_and_plans_zero_changes(tmp_path: Path,
                                                                          fake_cloudflare: FakeCloudflare) -> None:
    fake = fake_cloudflare
    project = _deployed_by_wrangler(tmp_path, fake)
    env = {**fake.environ(), "API_KEY": SECRET}

    converted = run("init", "--from-wrangler", "wrangler.toml", "legacy/wrangler.toml", cwd=project)
    assert "wrote workers.yaml" in converted.stderr
    run("validate", cwd=project, env=env)

    imported = run("import", "--all", "--trust-secrets", cwd=project, env=env)
    assert imported.stdout.splitlines()[-2] == "Imported 2 script(s)."
    assert "Imported script shop (3 binding(s), 1 secret(s) trusted, etag" in imported.stdout
    assert fake.find("PUT") == [] and fake.find("POST") == []  # adopted, nothing re-uploaded
    assert len(fake.find("GET", SCRIPTS_URL)) == 1  # one list for all scripts

    plan = run("plan", "--refresh", "--detailed-exitcode", "--format", "json", cwd=project, env=env)
    doc = json.loads(plan.stdout)
    assert doc["summary"] == {"create": 0, "update": 0, "delete": 0, "no-op": 2}
    text = run("plan", "--refresh", "--detailed-exitcode", cwd=project, env=env).stdout
    assert "No changes" in text

    state = (project / ".deployer" / "state.json").read_text()
    assert SECRET not in state + converted.stderr + imported.stdout + imported.stderr + plan.stdout + text
    assert "API_KEY" in json.dumps(json.loads(state)["scripts"]["shop"])


def test_without_trust_secrets_the_next_plan_sends_the_secrets_again(tmp_path: Path,
                                                                     fake_cloudflare: FakeCloudflare) -> None:
    project = _deployed_by_wrangler(tmp_path, fake_cloudflare)
    env = {**fake_cloudflare.environ(), "API_KEY": SECRET}
    run("init", "--from-wrangler", "wrangler.toml", "legacy/wrangler.toml", cwd=project)
    run("import", "--all", cwd=project, env=env)
    doc = json.loads(run("plan", "--format", "json", cwd=project, env=env).stdout)
    assert {c["name"]: c["reasons"] for c in doc["changes"]} == {"legacy": [], "shop": ["secret"]}


def test_import_all_reports_scripts_missing_from_cloudflare_and_those_already_imported(
    tmp_path: Path, fake_cloudflare: FakeCloudflare
) -> None:
    project = _deployed_by_wrangler(tmp_path, fake_cloudflare)
    env = {**fake_cloudflare.environ(), "API_KEY": SECRET}
    run("init", "--from-wrangler", "wrangler.toml", "legacy/wrangler.toml", cwd=project)
    run("import", "legacy", cwd=project, env=env)
    del fake_cloudflare.scripts()["shop"]
    result = run("import", "--all", cwd=project, env=env)
    assert result.stdout.splitlines() == [
        "Imported 0 script(s); not in Cloudflare (plan shows a create): shop; already in the state: legacy.",
        "'deployer plan' now shows only what differs from the manifest.",
    ]
    doc = json.loads(run("plan", "--format", "json", cwd=project, env=env).stdout)
    assert {c["name"]: c["action"] for c in doc["changes"]} == {"legacy": "no-op", "shop": "create"}


def test_trust_secrets_warns_about_a_manifest_secret_cloudflare_does_not_have(
    tmp_path: Path, fake_cloudflare: FakeCloudflare
) -> None:
    project = _deployed_by_wrangler(tmp_path, fake_cloudflare)
    del fake_cloudflare.scripts()["shop"]["secrets"]["API_KEY"]
    env = {**fake_cloudflare.environ(), "API_KEY": SECRET}
    run("init", "--from-wrangler", "wrangler.toml", "legacy/wrangler.toml", cwd=project)
    result = run("import", "--all", "--trust-secrets", cwd=project, env=env)
    assert ("warning: script shop: secret API_KEY is in the manifest but not deployed in Cloudflare: the next apply "
            "sends it") in result.stderr
    doc = json.loads(run("plan", "--format", "json", cwd=project, env=env).stdout)
    assert {c["name"]: c["reasons"] for c in doc["changes"]} == {"legacy": [], "shop": ["bindings"]}


def test_import_needs_a_name_or_all_but_not_both(tmp_path: Path, fake_cloudflare: FakeCloudflare) -> None:
    project = _deployed_by_wrangler(tmp_path, fake_cloudflare)
    run("init", "--from-wrangler", "wrangler.toml", cwd=project)
    for args in ((), ("shop", "--all")):
        result = run("import", *args, cwd=project, env={"API_KEY": SECRET}, expect=1)
        assert "error: import takes a script NAME or --all (every script of the manifest), not both" in result.stderr
    assert "TRUST that the secrets deployed in Cloudflare hold exactly the values" in " ".join(
        run("import", "--help", cwd=project).stdout.split())
