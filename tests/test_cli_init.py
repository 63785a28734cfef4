"""deployer init and the pre-commit hook definition."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.cli_runner import run

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = {"CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef"}


def test_init_writes_a_starter_project_that_plans(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/")
    result = run("init", cwd=tmp_path)
    assert result.stderr.splitlines()[:4] == [
        "wrote workers.yaml", "wrote workers.schema.json", "wrote src/index.js", "added .deployer/*.lock to .gitignore",
    ]
    assert "CLOUDFLARE_API_TOKEN" in result.stderr  # what apply will need, said up front
    # An ES module, as wrangler users know it, uploaded with main_module.
    assert (tmp_path / "src" / "index.js").read_text().startswith("export default {\n  async fetch(request, env, ctx)")
    assert "format: modules" in (tmp_path / "workers.yaml").read_text()
    assert (tmp_path / "workers.yaml").read_text().startswith(
        "# yaml-language-server: $schema=workers.schema.json\nversion: 1\n")
    assert json.loads((tmp_path / "workers.schema.json").read_text()) == json.loads(
        (REPO / "schemas" / "workers.schema.json").read_text())
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.deployer/*.lock\n"
    assert "+ script my-worker" in run("plan", cwd=tmp_path, env=ACCOUNT).stdout


def test_init_refuses_to_overwrite_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "workers.yaml").write_text("mine\n")
    result = run("init", cwd=tmp_path, expect=1)
    assert result.stderr.startswith("error: workers.yaml already exists; init never overwrites it")
    assert (tmp_path / "workers.yaml").read_text() == "mine\n"
    assert not (tmp_path / "src").exists() and not (tmp_path / ".gitignore").exists()


def test_init_elsewhere_keeps_existing_files_and_ignores_the_lock_once(tmp_path: Path) -> None:
    target = tmp_path / "infra"
    (target / "src").mkdir(parents=True)
    (target / "src" / "index.js").write_text("// mine\n")
    (target / ".gitignore").write_text(".deployer/*.lock\n")
    result = run("init", "-f", "infra/workers.yaml", cwd=tmp_path)
    assert "left infra/src/index.js as it is" in result.stderr
    assert (target / "src" / "index.js").read_text() == "// mine\n"
    assert (target / ".gitignore").read_text() == ".deployer/*.lock\n"


def test_pre_commit_hook_validates_the_manifests_pre_commit_passes(tmp_path: Path) -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert (hook["id"], hook["entry"], hook["language"]) == ("deployer-validate", "deployer validate", "python")
    files = re.compile(hook["files"])
    assert files.search("workers.yaml") and files.search("infra/workers.yml")
    assert not files.search("my-workers.yaml") and not files.search("workers.yaml.bak")
    run("init", cwd=tmp_path)
    # What pre-commit runs: entry + args + the staged files that match (no CLOUDFLARE_ACCOUNT_ID set).
    args = hook["entry"].split()[1:] + hook["args"] + ["workers.yaml"]
    assert "valid" in run(*args, cwd=tmp_path).stderr
