"""deployer init --from-wrangler: a corpus of wrangler configs (tests/wrangler_configs/<case>/) in
TOML, JSON and JSONC, each converted and compared with its expected.yaml and the warnings with
expected-warnings.txt; the cases that use only today's manifest keys are validated and planned."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from deployer.errors import DeployerError
from deployer.manifest.wrangler import WranglerConfig, convert_wrangler
from deployer.manifest.wrangler_lines import json_lines, toml_lines
from tests.cli_runner import run

CORPUS = Path(__file__).resolve().parent / "wrangler_configs"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())


def _case(name: str, tmp_path: Path) -> tuple[Path, list[str]]:
    target = tmp_path / name
    shutil.copytree(CORPUS / name, target)
    args = (target / "args.txt").read_text().split() if (target / "args.txt").exists() else []
    return target, args


@pytest.mark.parametrize("case", CASES)
def test_converted_manifest_and_warnings_are_exactly_the_expected_ones(case: str, tmp_path: Path) -> None:
    project, args = _case(case, tmp_path)
    result = run("init", "--from-wrangler", *args, cwd=project)
    assert (project / "workers.yaml").read_text() == (project / "expected.yaml").read_text()
    warnings = [line.removeprefix("warning: ") for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == (project / "expected-warnings.txt").read_text().splitlines()
    assert "wrote workers.yaml" in result.stderr


def test_the_corpus_covers_toml_json_and_jsonc_and_several_environments() -> None:
    configs = [p.name for p in CORPUS.rglob("wrangler.*")]
    assert {"wrangler.toml", "wrangler.json", "wrangler.jsonc"} <= set(configs)
    environments = {name for case in CASES
                    for name in (yaml.safe_load((CORPUS / case / "expected.yaml").read_text()).get("environments") or {})}
    assert len(environments) >= 4


def test_every_binding_type_and_setting_of_the_contract_is_in_the_corpus() -> None:
    docs = [yaml.safe_load((CORPUS / case / "expected.yaml").read_text()) for case in CASES]
    scripts = [s for doc in docs for s in doc["scripts"].values()]
    types = {b["type"] for s in scripts for b in s.get("bindings", [])}
    assert types == {"plain_text", "json", "secret_text", "kv_namespace", "r2_bucket", "d1", "queue", "service",
                     "durable_object_namespace", "analytics_engine", "ai", "browser", "version_metadata", "hyperdrive",
                     "vectorize", "mtls_certificate", "dispatch_namespace", "send_email", "secrets_store_secret"}
    keys = {key for s in scripts for key in s}
    assert keys >= {"path", "format", "modules", "build", "compatibility_date", "compatibility_flags", "bindings",
                    "durable_objects", "queue_consumers", "routes", "custom_domains", "crons", "workers_dev",
                    "placement", "limits", "observability", "logpush", "tail_consumers"}


@pytest.mark.parametrize("case", CASES)
def test_every_converted_manifest_of_the_corpus_validates_in_every_environment(case: str, tmp_path: Path) -> None:
    project, args = _case(case, tmp_path)
    run("init", "--from-wrangler", *args, cwd=project)
    result = run("validate", "--allow-unset", cwd=project)
    assert "workers.yaml: valid (" in result.stderr


SUPPORTED_ENV = {"COUNTER_API_KEY": "converted-secret"}


def test_converted_manifest_with_todays_keys_validates_and_plans_every_environment(tmp_path: Path) -> None:
    project, args = _case("supported", tmp_path)
    run("init", "--from-wrangler", *args, cwd=project)
    assert "workers.yaml: valid (2 scripts, 0 kv_namespace(s); environments: staging)" in run(
        "validate", cwd=project, env=SUPPORTED_ENV).stderr
    plan = json.loads(run("plan", "--format", "json", cwd=project, env=SUPPORTED_ENV).stdout)
    assert [(c["name"], c["action"]) for c in plan["changes"]] == [("legacy-hello", "create"),
                                                                   ("visit-counter", "create")]
    text = run("plan", cwd=project, env=SUPPORTED_ENV).stdout
    # A literal ${ in a wrangler var stays literal: it was escaped as $${ in the manifest.
    assert '+ binding MESSAGE: plain_text "hi from ${ENVIRONMENT}"' in text
    assert "+ binding COUNTS: kv_namespace 0f2ac74b498b48028cb68387c421e279" in text
    staging = run("plan", "--env", "staging", cwd=project, env=SUPPORTED_ENV).stdout
    assert "+ script visit-counter-staging" in staging and "+ script legacy-hello-staging" in staging
    assert "+ binding COUNTS: kv_namespace 1a2b3c4d5e6f708192a3b4c5d6e7f809" in staging
    assert '+ binding ENVIRONMENT: plain_text "staging"' in staging
    assert "converted-secret" not in text + staging


# --- the command ------------------------------------------------------------------------------


def test_init_from_wrangler_refuses_to_overwrite_a_manifest(tmp_path: Path) -> None:
    project, _ = _case("supported", tmp_path)
    (project / "workers.yaml").write_text("mine\n")
    result = run("init", "--from-wrangler", cwd=project, expect=1)
    assert result.stderr.startswith("error: workers.yaml already exists; init never overwrites it")
    assert (project / "workers.yaml").read_text() == "mine\n"


def test_init_from_wrangler_without_a_config_names_the_files_it_looked_for(tmp_path: Path) -> None:
    result = run("init", "--from-wrangler", cwd=tmp_path, expect=1)
    assert f"error: no wrangler.json, wrangler.jsonc, wrangler.toml in {tmp_path}" in result.stderr
    assert not (tmp_path / "workers.yaml").exists()


def test_init_from_wrangler_picks_the_config_wrangler_would(tmp_path: Path) -> None:
    (tmp_path / "w.js").write_text("export default {}\n")
    (tmp_path / "wrangler.toml").write_text('name = "from-toml"\nmain = "w.js"\n')
    (tmp_path / "wrangler.json").write_text('{"name": "from-json", "main": "w.js"}')
    result = run("init", "--from-wrangler", cwd=tmp_path)
    assert "warning: converting wrangler.json (wrangler's choice among wrangler.json, wrangler.toml)" in result.stderr
    assert "from-json:" in (tmp_path / "workers.yaml").read_text()


def test_config_paths_need_the_from_wrangler_flag(tmp_path: Path) -> None:
    result = run("init", "wrangler.toml", cwd=tmp_path, expect=1)
    assert "error: init takes config files only with --from-wrangler" in result.stderr


def test_a_config_outside_the_manifest_directory_gives_paths_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "workers" / "api" / "src").mkdir(parents=True)
    (tmp_path / "workers" / "api" / "src" / "index.js").write_text("export default {}\n")
    (tmp_path / "workers" / "api" / "wrangler.toml").write_text(
        'name = "api"\nmain = "src/index.js"\n[build]\ncommand = "make"\n')
    run("init", "--from-wrangler", "workers/api/wrangler.toml", "-f", "deploy/workers.yaml", cwd=tmp_path,
        expect=None)
    doc = yaml.safe_load((tmp_path / "deploy" / "workers.yaml").read_text())
    assert doc["scripts"]["api"]["path"] == "../workers/api/src/index.js"
    assert doc["scripts"]["api"]["build"] == {"command": "cd ../workers/api && make"}


@pytest.mark.parametrize(("file", "text", "message"), [
    ("wrangler.toml", 'name = "x"\nmain = ', "error: wrangler.toml: not valid TOML: "),
    ("wrangler.jsonc", '{"name": "x", "main": }', "error: wrangler.jsonc: not valid JSON (comments and trailing "
                                                  "commas are allowed): 1 Unexpected"),
    ("wrangler.toml", 'main = "w.js"\n', "error: wrangler.toml: no 'name': add the Worker's name"),
    ("wrangler.json", '{"name": "x"}', "error: wrangler.json: no 'main' (the Worker's entry file)"),
    ("wrangler.json", '[1]', "error: wrangler.json: a wrangler config must be a table"),
])
def test_a_config_that_cannot_be_converted_names_the_file_and_what_to_fix(
    tmp_path: Path, file: str, text: str, message: str
) -> None:
    (tmp_path / file).write_text(text)
    result = run("init", "--from-wrangler", file, cwd=tmp_path, expect=1)
    assert result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "workers.yaml").exists()


def test_two_configs_naming_the_same_worker_are_refused() -> None:
    configs = [WranglerConfig("a/wrangler.toml", 'name = "x"\nmain = "i.js"\n', "a"),
               WranglerConfig("b/wrangler.toml", 'name = "x"\nmain = "i.js"\n', "b")]
    with pytest.raises(DeployerError, match=r"b/wrangler.toml: Worker 'x' is also named in a/wrangler.toml"):
        convert_wrangler(configs, lambda path: "export default {}")


def test_an_unquoted_toml_date_is_the_compatibility_date_string() -> None:
    config = WranglerConfig("wrangler.toml", 'name = "x"\nmain = "i.js"\ncompatibility_date = 2024-09-23\n')
    text = convert_wrangler([config], lambda path: "export default {}").text
    assert "compatibility_date: '2024-09-23'" in text


def test_an_unreadable_entry_is_assumed_to_be_a_module_with_a_warning() -> None:
    config = WranglerConfig("wrangler.toml", 'name = "x"\nmain = "dist/i.js"\n[build]\ncommand = "make"\n')
    conversion = convert_wrangler([config], lambda path: None)
    assert conversion.warnings == ("wrangler.toml:2: main: cannot read dist/i.js (made by the build command?): "
                                   "format: modules assumed; check it",)
    assert "format: modules" in conversion.text and "build: {command: make}" in conversion.text


def test_a_module_imported_from_outside_the_entry_directory_is_reported() -> None:
    config = WranglerConfig("wrangler.toml", 'name = "x"\nmain = "src/i.js"\n')
    sources = {"src/i.js": 'import a from "../shared/a.js";\nimport b from "./b";\nexport default {}',
               "shared/a.js": "export default 1"}
    conversion = convert_wrangler([config], sources.get)
    assert conversion.warnings == (
        "wrangler.toml:2: main: src/i.js imports '../shared/a.js', outside src/ (the entry's directory, where every "
        "module must be): not carried over",
        "wrangler.toml:2: main: src/i.js imports './b', but src/b cannot be read (wrangler resolves and bundles it): "
        "list the file under modules yourself",
    )


# --- where keys were written -------------------------------------------------------------------


def test_toml_lines_follow_tables_arrays_of_tables_and_inline_arrays() -> None:
    text = ('name = "a" # c\nkv_namespaces = [\n  { binding = "A" },\n  { binding = "B" },\n]\n'
            'note = """x = 1\n"""\n[[durable_objects.bindings]]\nname = "D"\n[[durable_objects.bindings]]\n'
            'name = "E"\n[env.staging]\nvars = { Z = 2 }\n')
    lines = toml_lines(text)
    assert lines[("kv_namespaces", 1, "binding")] == 4
    assert ("x",) not in lines  # inside a multi-line string
    assert lines[("durable_objects", "bindings", 1, "name")] == 11
    assert lines[("env", "staging", "vars", "Z")] == 13


def test_json_lines_skip_comments_and_accept_trailing_commas() -> None:
    text = '{\n  // "name": "commented out",\n  "name": "a", /* "main" */\n  "routes": [\n    "x",\n    "y",\n  ],\n}'
    assert json_lines(text) == {("name",): 3, ("routes",): 4, ("routes", 0): 5, ("routes", 1): 6}
