"""Files written by the first round's deployer (commit c89fa65, before the registry of kinds)
still work unchanged: ``tests/compat/round1`` holds the sample project, the state its apply
wrote and a plan file saved after one script changed (with ``API_KEY=s3cr3t-compat``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deployer.manifest.load import load_manifest
from deployer.plan.planfile import check_planfile, read_planfile
from deployer.plan.planner import make_plan
from deployer.state.document import state_from_json, state_to_json
from tests.cli_runner import run
from tests.fake_cloudflare import FakeCloudflare

ROUND1 = Path(__file__).parent / "compat" / "round1"
ENV = {"API_KEY": "s3cr3t-compat", "CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef"}
SEED_NAMESPACE = "0f2ac74b498b48028cb68387c421e279"
COUNTS_NAMESPACE = "3dd1dc1512b540ea80bc3ce4e378704b"


@pytest.fixture
def round1(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROUND1, project)
    (project / ".deployer").mkdir()
    shutil.move(project / "state.json", project / ".deployer" / "state.json")
    return project


def test_a_round1_state_reads_and_writes_back_byte_for_byte() -> None:
    text = (ROUND1 / "state.json").read_text()
    state = state_from_json(json.loads(text), "state.json")
    assert json.dumps(state_to_json(state), indent=2, sort_keys=True) + "\n" == text


def test_a_round1_plan_file_is_still_what_plan_would_do(round1: Path) -> None:
    manifest = load_manifest(round1 / "workers.yaml", ENV)
    state = state_from_json(json.loads((round1 / ".deployer" / "state.json").read_text()), "state.json")
    doc = read_planfile(round1 / "plan.json")
    check_planfile(doc, round1 / "plan.json", manifest, state, make_plan(manifest, state))  # raises when stale


def test_applying_a_round1_plan_file_sends_the_round1_upload(round1: Path, fake_cloudflare: FakeCloudflare) -> None:
    fake_cloudflare.kv_namespaces()[SEED_NAMESPACE] = "the seed's namespace"
    fake_cloudflare.kv_namespaces()[COUNTS_NAMESPACE] = "sample-project-counts"
    result = run("apply", "plan.json", cwd=round1, env={**fake_cloudflare.environ(), **ENV})
    assert "updated script my-worker" in result.stderr
    (upload,) = fake_cloudflare.find("PUT")
    assert upload.path.endswith("/workers/scripts/my-worker")
    assert upload.parts is not None and set(upload.parts) == {"metadata", "script"}
    assert upload.parts["metadata"].data == json.dumps({
        "body_part": "script",
        "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": SEED_NAMESPACE}],
    }).encode()
    assert upload.parts["script"].data == (round1 / "script.js").read_bytes()
    plan = run("plan", "--format", "json", cwd=round1, env=ENV)
    assert json.loads(plan.stdout)["summary"] == {"create": 0, "update": 0, "delete": 0, "no-op": 4}
