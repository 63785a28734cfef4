"""One test per manifest rule: YAML in, the exact diagnostics (with positions) out."""
from __future__ import annotations

import hashlib

import json
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from deployer.manifest import validate
from deployer.errors import DeployerError, ManifestError
from deployer.manifest.load import load_manifest

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "0f2ac74b498b48028cb68387c421e279"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest directory with src/worker.js and src/other.js, as the working directory."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.js").write_text("addEventListener('fetch', () => {})\n")
    (tmp_path / "src" / "other.js").write_text("// other\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Write ``text`` as workers.yaml in the current directory; return the diagnostics as text."""
    Path("workers.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), environ or {})
    return [str(d) for d in excinfo.value.diagnostics]


# --- YAML ------------------------------------------------------------------------------


def test_duplicate_top_level_key_is_reported_at_the_second_key(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
        version: 1
    """) == ["workers.yaml:6:1: version: duplicate key 'version' (first at line 1)"]


def test_duplicate_key_inside_a_binding_is_reported(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings:
              - type: plain_text
                name: A
                text: one
                name: B
    """) == ["workers.yaml:10:9: scripts.a.bindings[0].name: duplicate key 'name' (first at line 8)"]


def test_yaml_syntax_error_is_a_diagnostic_with_the_parser_position(project: Path) -> None:
    assert problems("""\
        version: 1
        scripts: [a, b
    """) == [
        "workers.yaml:3:1: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 2)"
    ]


def test_tab_indentation_is_explained(project: Path) -> None:
    assert problems("version: 1\nscripts:\n\ta: {}\n") == [
        "workers.yaml:3:1: invalid YAML: a tab character here: YAML indentation must use spaces "
        "(while scanning for the next token at line 3)"
    ]


def test_empty_file_is_a_diagnostic(project: Path) -> None:
    assert problems("# nothing here\n") == [
        "workers.yaml:1:1: the manifest is empty (it needs at least 'version: 1' and 'scripts')"
    ]


def test_top_level_list_is_a_diagnostic(project: Path) -> None:
    assert problems("- version: 1\n") == [
        "workers.yaml:1:1: the manifest must be a mapping (version: 1, scripts: ...), got a list"
    ]


def test_non_utf8_bytes_are_a_diagnostic_at_the_bad_byte(project: Path) -> None:
    Path("workers.yaml").write_bytes(b"version: 1\ntitle: caf\xe9\n")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), {})
    assert [str(d) for d in excinfo.value.diagnostics] == [
        "workers.yaml:2:11: the manifest is not UTF-8 text (byte 0xe9 cannot be decoded)"
    ]


def test_control_character_is_a_diagnostic(project: Path) -> None:
    assert problems("version: 1\nscripts: a\x00b\n") == [
        "workers.yaml:2:11: invalid YAML: U+0000 is a control character, which YAML does not allow"
    ]


def test_second_document_is_refused(project: Path) -> None:
    assert problems("version: 1\n---\nversion: 1\n") == [
        "workers.yaml:2:1: invalid YAML: but found another document "
        "(expected a single document in the stream at line 1)"
    ]


def test_manifest_over_10_mib_is_refused_before_parsing(project: Path) -> None:
    Path("workers.yaml").write_bytes(b"#" * (10 * 1024 * 1024 + 1))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), {})
    assert [str(d) for d in excinfo.value.diagnostics] == [
        "workers.yaml: the manifest is 10485761 bytes; at most 10 MiB is accepted"
    ]


def test_billion_laughs_is_stopped_by_the_node_limit(project: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems("\n".join(lines) + "\n") == [
        "workers.yaml:5:5: a5[7]: the manifest expands to more than 1000000 values "
        "(aliases repeated too often?)"
    ]


def test_recursive_alias_is_a_diagnostic(project: Path) -> None:
    assert problems("a: &x [1, *x]\n") == [
        "workers.yaml:1:4: a[1]: an alias here refers to a value that contains it"
    ]


def test_deep_nesting_is_a_diagnostic_not_a_recursion_error(project: Path) -> None:
    text = "".join(" " * i + "k:\n" for i in range(300))
    assert problems(text) == ["workers.yaml:102:102: the manifest is nested too deeply (at most 100 levels)"]


def test_missing_manifest_is_a_plain_error_naming_the_option(project: Path) -> None:
    with pytest.raises(DeployerError) as excinfo:
        load_manifest(Path("nope.yaml"), {})
    assert not isinstance(excinfo.value, ManifestError)
    assert str(excinfo.value) == "manifest not found: nope.yaml (pass -f/--file to point at another)"


# --- variables -------------------------------------------------------------------------


def test_unset_variable_names_the_variable_and_the_line(project: Path) -> None:
    assert problems("""\
        # yaml-language-server: $schema=../schemas/workers.schema.json
        version: 1
        account_id: ${CLOUDFLARE_ACCOUNT_ID}
        scripts:
          my-worker:
            path: src/worker.js
    """) == [
        "workers.yaml:3:13: account_id: environment variable CLOUDFLARE_ACCOUNT_ID is not set "
        "(export it, or write ${CLOUDFLARE_ACCOUNT_ID:-default})"
    ]


def test_default_is_used_when_the_variable_is_unset_or_empty(project: Path) -> None:
    Path("workers.yaml").write_text(textwrap.dedent(f"""\
        version: 1
        account_id: ${{ACCOUNT:-{ACCOUNT}}}
        scripts:
          my-worker:
            path: src/worker.js
    """))
    assert load_manifest(Path("workers.yaml"), {}).account_id == ACCOUNT
    assert load_manifest(Path("workers.yaml"), {"ACCOUNT": ""}).account_id == ACCOUNT


def test_malformed_placeholder_is_a_diagnostic(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/${{1DIR}}/worker.js
    """) == [
        "workers.yaml:5:11: scripts.my-worker.path: '${1DIR}' is not a valid placeholder; "
        "write ${NAME} or ${NAME:-default}"
    ]


def test_filled_value_is_checked_again_without_showing_it(project: Path) -> None:
    assert problems("""\
        version: 1
        account_id: ${ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
    """, {"ACCOUNT": "NOT-AN-ID"}) == [
        "workers.yaml:2:13: account_id: '${ACCOUNT}' expands to a value that is not 32 lowercase hex characters"
    ]


def test_secret_value_never_appears_in_a_diagnostic(project: Path) -> None:
    messages = problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: secret_text
                name: ${{API_KEY}}
                text: ${{API_KEY}}
    """, {"API_KEY": "hunter2 canary"})
    assert messages == [
        "workers.yaml:8:15: scripts.my-worker.bindings[0].name: "
        "'${API_KEY}' expands to a value that is not a valid JavaScript identifier"
    ]
    assert "canary" not in "".join(messages)


# --- schema rules ----------------------------------------------------------------------


def test_unknown_key_suggests_the_close_match(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindngs: []
    """) == ["workers.yaml:6:5: scripts.my-worker.bindngs: unexpected key 'bindngs' (did you mean 'bindings'?)"]


def test_unknown_key_without_close_match_lists_the_allowed_keys(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts: {{}}
        routes: []
    """) == [
        "workers.yaml:4:1: routes: unexpected key 'routes' "
        "(expected one of: version, account_id, zone_id, project, kv_namespaces, r2_buckets, d1_databases, queues, scripts, "
            "environments)"
    ]


def test_key_of_another_binding_type_is_unknown_for_this_type(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: kv_namespace
                name: KV
                namespace_id: {ACCOUNT}
                text: hello
    """) == [
        "workers.yaml:10:9: scripts.my-worker.bindings[0].text: unexpected key 'text' in a kv_namespace "
        "binding (expected one of: type, name, namespace_id, namespace)"
    ]


def test_misspelt_key_in_a_binding_is_reported_once(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - {{type: kv_namespace, name: KV, namespace_id: {ACCOUNT}, namespce: x}}
    """) == [
        "workers.yaml:7:88: scripts.my-worker.bindings[0].namespce: unexpected key 'namespce' "
        "in a kv_namespace binding (did you mean 'namespace'?)"
    ]


def test_wrong_type_says_what_was_expected(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              type: plain_text
          other:
            path: 42
    """) == [
        "workers.yaml:7:7: scripts.my-worker.bindings: expected a list, got a mapping",
        "workers.yaml:9:11: scripts.other.path: expected a string, got an integer (put it in quotes)",
    ]


def test_missing_required_key_is_reported_at_the_parent_mapping(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            bindings: []
    """) == ["workers.yaml:5:5: scripts.my-worker: missing required key 'path'"]


def test_version_2_is_refused(project: Path) -> None:
    assert problems(f"""\
        version: 2
        account_id: {ACCOUNT}
        scripts: {{}}
    """) == ["workers.yaml:1:10: version: unsupported version 2; only version 1 exists"]


def test_unknown_binding_type_suggests_the_close_match(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - {{type: kv_namspace, name: KV}}
    """) == [
        "workers.yaml:7:16: scripts.my-worker.bindings[0].type: 'kv_namspace' is not a binding type "
        "(did you mean 'kv_namespace'?)"
    ]


def test_literal_id_must_be_32_lowercase_hex_characters(project: Path) -> None:
    assert problems("""\
        version: 1
        account_id: 0F2AC74B498B48028CB68387C421E279
        scripts: {}
    """) == [
        "workers.yaml:2:13: account_id: '0F2AC74B498B48028CB68387C421E279' is not 32 lowercase hex characters"
    ]


def test_bad_script_name_is_refused(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          My_Worker:
            path: src/worker.js
    """) == [
        "workers.yaml:4:3: scripts.My_Worker: 'My_Worker' is not a valid script name (lowercase letters, "
        "digits, '-' and '_', not starting with '-', at most 63 characters)"
    ]


def test_script_name_longer_than_63_characters_is_refused(project: Path) -> None:
    name = "w" * 64
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          {name}:
            path: src/worker.js
    """) == [f"workers.yaml:4:3: scripts.{name}: is 64 characters long; at most 63 are allowed"]


def test_script_name_is_checked_again_after_filling_in(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          worker-${{ENV}}:
            path: src/worker.js
    """, {"ENV": "Staging"}) == [
        'workers.yaml:4:3: scripts["worker-${ENV}"]: '
        "'worker-${ENV}' expands to a value that is not a valid "
        "script name (lowercase letters, digits, '-' and '_', not starting with '-', at most 63 characters)"
    ]


def test_namespace_title_must_not_be_empty(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: ""}}
        scripts: {{}}
    """) == ["workers.yaml:4:18: kv_namespaces.cache.title: must not be empty"]


# --- semantic rules --------------------------------------------------------------------


def test_binding_name_must_be_a_javascript_identifier(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: plain_text
                name: my name
                text: x
              - type: plain_text
                name: class
                text: x
    """) == [
        "workers.yaml:8:15: scripts.my-worker.bindings[0].name: 'my name' is not a valid JavaScript identifier",
        "workers.yaml:11:15: scripts.my-worker.bindings[1].name: 'class' is a reserved word in JavaScript; "
        "choose another name",
    ]


def test_binding_names_must_be_unique_within_a_script(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: A, text: x}}
              - {{type: secret_text, name: A, text: y}}
          other:
            path: src/other.js
            bindings:
              - {{type: plain_text, name: A, text: x}}
    """) == [
        "workers.yaml:8:35: scripts.my-worker.bindings[1].name: duplicate binding name 'A' (first at line 7)"
    ]


def test_unknown_namespace_reference_suggests_the_close_match(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: my-cache}}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - {{type: kv_namespace, name: CACHE, namespace: cahce}}
    """) == [
        "workers.yaml:9:54: scripts.my-worker.bindings[0].namespace: namespace 'cahce' is not declared "
        "under kv_namespaces (did you mean 'cache'?)"
    ]


def test_namespace_and_namespace_id_together_are_refused(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: my-cache}}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: kv_namespace
                name: CACHE
                namespace: cache
                namespace_id: {ACCOUNT}
    """) == [
        "workers.yaml:9:9: scripts.my-worker.bindings[0]: "
        "a kv_namespace binding takes namespace_id or namespace, not both"
    ]


def test_kv_binding_without_namespace_or_namespace_id_is_refused(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: kv_namespace
                name: CACHE
    """) == [
        "workers.yaml:7:9: scripts.my-worker.bindings[0]: a kv_namespace binding needs namespace_id or namespace"
    ]


def test_account_id_or_zone_id_is_required(project: Path) -> None:
    assert problems("""\
        version: 1
        scripts:
          my-worker:
            path: src/worker.js
    """) == ["workers.yaml:1:1: missing 'account_id' (or 'zone_id' for the legacy single-script API)"]


def test_zone_mode_takes_exactly_one_script(project: Path) -> None:
    assert problems(f"""\
        version: 1
        zone_id: {ACCOUNT}
        scripts:
          one: {{path: src/worker.js}}
          two: {{path: src/other.js}}
    """) == [
        "workers.yaml:3:1: scripts: the legacy single-script API (zone_id) deploys exactly one script, "
        "found 2 (set account_id to deploy several)"
    ]


def test_declared_namespaces_need_account_id(project: Path) -> None:
    assert problems(f"""\
        version: 1
        zone_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: my-cache}}
        scripts:
          one: {{path: src/worker.js}}
    """) == [
        "workers.yaml:3:1: kv_namespaces: namespaces belong to an account: set account_id to declare kv_namespaces"
    ]


def test_namespace_titles_must_be_unique(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: shared}}
          store: {{title: shared}}
        scripts: {{}}
    """) == ["workers.yaml:5:18: kv_namespaces.store.title: duplicate title 'shared' (first at line 4)"]


# --- script paths ----------------------------------------------------------------------


def _script_at(path: str) -> str:
    return f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: {path}
    """


def test_path_escaping_with_dotdot_is_refused(project: Path) -> None:
    assert problems(_script_at("src/../../secret.js")) == [
        "workers.yaml:5:11: scripts.my-worker.path: 'src/../../secret.js' leads outside the manifest's directory"
    ]


def test_absolute_path_is_refused(project: Path) -> None:
    assert problems(_script_at("/etc/passwd")) == [
        "workers.yaml:5:11: scripts.my-worker.path: '/etc/passwd' is an absolute path; "
        "give it relative to the manifest's directory"
    ]


def test_symlink_leading_outside_is_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "id_rsa"
    outside.write_text("private")
    (project / "src" / "link.js").symlink_to(outside)
    assert problems(_script_at("src/link.js")) == [
        "workers.yaml:5:11: scripts.my-worker.path: 'src/link.js' resolves through a symlink to a file "
        "outside the manifest's directory"
    ]


def test_symlink_inside_the_directory_is_accepted_and_resolved(project: Path) -> None:
    (project / "link.js").symlink_to(project / "src" / "worker.js")
    Path("workers.yaml").write_text(textwrap.dedent(_script_at("link.js")))
    manifest = load_manifest(Path("workers.yaml"), {})
    assert manifest.scripts[0].path == (project / "src" / "worker.js").resolve()


def test_a_symlinked_directory_on_the_way_is_resolved_and_its_way_out_refused(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (project / "alias").symlink_to(project / "src", target_is_directory=True)
    Path("workers.yaml").write_text(textwrap.dedent(_script_at("alias/worker.js")))
    assert load_manifest(Path("workers.yaml"), {}).scripts[0].path == (project / "src" / "worker.js").resolve()
    outside = tmp_path_factory.mktemp("outside")
    (outside / "worker.js").write_text("addEventListener('fetch', () => {})")
    (project / "src" / "out").symlink_to(outside, target_is_directory=True)
    assert problems(_script_at("src/out/worker.js")) == [
        "workers.yaml:5:11: scripts.my-worker.path: 'src/out/worker.js' resolves through a symlink to a file "
        "outside the manifest's directory"
    ]


def test_missing_script_file_is_refused(project: Path) -> None:
    assert problems(_script_at("src/missing.js")) == [
        f"workers.yaml:5:11: scripts.my-worker.path: script file 'src/missing.js' does not exist "
        f"in {project.resolve()}"
    ]


def test_directory_is_not_a_script_file(project: Path) -> None:
    assert problems(_script_at("src")) == ["workers.yaml:5:11: scripts.my-worker.path: 'src' is not a regular file"]


def test_paths_are_relative_to_the_manifest_not_the_working_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "ci").mkdir()
    (project / "ci" / "workers.yaml").write_text(textwrap.dedent(_script_at("../src/worker.js")))
    monkeypatch.chdir(project / "src")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("../ci/workers.yaml"), {})
    assert [str(d) for d in excinfo.value.diagnostics] == [
        "../ci/workers.yaml:5:11: scripts.my-worker.path: '../src/worker.js' leads outside the manifest's directory"
    ]


# --- everything at once ----------------------------------------------------------------


def test_several_errors_are_reported_at_once_sorted_by_position(project: Path) -> None:
    assert problems("""\
        version: 2
        account_id: ${ACCOUNT}
        scripts:
          Bad:
            path: /abs.js
            bindings:
              - {type: plain_text, name: 1x, text: ok}
          good:
            pth: src/worker.js
    """) == [
        "workers.yaml:1:10: version: unsupported version 2; only version 1 exists",
        "workers.yaml:2:13: account_id: environment variable ACCOUNT is not set "
        "(export it, or write ${ACCOUNT:-default})",
        "workers.yaml:4:3: scripts.Bad: 'Bad' is not a valid script name (lowercase letters, digits, "
        "'-' and '_', not starting with '-', at most 63 characters)",
        "workers.yaml:5:11: scripts.Bad.path: '/abs.js' is an absolute path; give it relative to the "
        "manifest's directory",
        "workers.yaml:7:34: scripts.Bad.bindings[0].name: '1x' is not a valid JavaScript identifier",
        "workers.yaml:9:5: scripts.good: missing required key 'path'",
        "workers.yaml:9:5: scripts.good.pth: unexpected key 'pth' (did you mean 'path'?)",
    ]


# --- the schema file -------------------------------------------------------------------


def _schema() -> Any:
    return json.loads((REPO / "schemas" / "workers.schema.json").read_text(encoding="utf-8"))


def test_packaged_schema_is_identical_to_the_top_level_schema() -> None:
    packaged = (REPO / "deployer" / "schemas" / "workers.schema.json").read_bytes()
    assert packaged == (REPO / "schemas" / "workers.schema.json").read_bytes()
    assert validate.schema_text().encode("utf-8") == packaged


def test_schema_is_valid_draft_2020_12() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]
    Draft202012Validator.check_schema(schema)


def _subschemas(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _subschemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _subschemas(value, f"{where}/{index}")


def test_every_property_in_the_schema_has_a_description() -> None:
    undescribed = [
        f"{where}/properties/{name}"
        for where, node in _subschemas(_schema())
        if isinstance(node.get("properties"), dict) and not where.endswith("/if")
        for name, sub in node["properties"].items()
        if "description" not in sub
    ]
    assert undescribed == []


def test_every_object_in_the_schema_refuses_unknown_keys() -> None:
    open_objects = [
        where for where, node in _subschemas(_schema())
        if node.get("type") == "object" and "additionalProperties" not in node and not where.endswith("/if")
    ]
    assert open_objects == []


def test_schema_accepts_a_raw_manifest_with_placeholders() -> None:
    raw = {
        "version": 1,
        "account_id": "${CLOUDFLARE_ACCOUNT_ID}",
        "kv_namespaces": {"cache-${ENV}": {"title": "app-${ENV}"}},
        "scripts": {
            "worker-${ENV}": {
                "path": "dist/${ENV}/worker.js",
                "bindings": [
                    {"type": "kv_namespace", "name": "CACHE", "namespace": "cache-${ENV}"},
                    {"type": "kv_namespace", "name": "OLD", "namespace_id": "${OLD_NAMESPACE_ID}"},
                    {"type": "secret_text", "name": "API_KEY", "text": "${API_KEY}"},
                ],
            }
        },
    }
    assert list(Draft202012Validator(_schema()).iter_errors(raw)) == []


def test_schema_patterns_are_the_rules_semantic_checks_use() -> None:
    defs = _schema()["$defs"]
    assert defs["hex_id"]["pattern"] == validate.schema_pattern(validate.HEX_ID)
    assert defs["script_name"]["pattern"] == validate.schema_pattern(validate.SCRIPT_NAME)
    assert defs["script_name"]["maxLength"] == validate.SCRIPT_NAME.max_length == 63
    assert defs["namespace_key"]["pattern"] == validate.schema_pattern(validate.NAMESPACE_KEY)


def test_schema_validator_is_built_once() -> None:
    assert validate._validator() is validate._validator()


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("scripts", "my-worker", "bindings", 1, "name"), "scripts.my-worker.bindings[1].name"),
        (("scripts", "my worker"), 'scripts["my worker"]'),
        ((), ""),
    ],
)
def test_json_path_text(parts: tuple[str | int, ...], expected: str) -> None:
    assert validate.json_path(parts) == expected



def test_wrong_shapes_are_reported_without_cascading(project: Path) -> None:
    assert problems("""\
        version: 1
        account_id: 5
        kv_namespaces: {cache: {title: x}}
        scripts:
          a:
            path: src/worker.js
            bindings: [1, {type: plain_text, name: "", text: x}]
    """) == [
        "workers.yaml:2:13: account_id: expected a string, got an integer (put it in quotes)",
        "workers.yaml:7:16: scripts.a.bindings[0]: expected a mapping, got an integer",
        "workers.yaml:7:44: scripts.a.bindings[1].name: must not be empty",
    ]


def test_script_names_equal_after_filling_in_are_refused(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          ${{FIRST}}: {{path: src/worker.js}}
          ${{SECOND}}: {{path: src/other.js}}
    """, {"FIRST": "same", "SECOND": "same"}) == [
        "workers.yaml:5:3: scripts[\"${SECOND}\"]: '${SECOND}' expands to a value that is the same "
        "script name as line 4"
    ]


@pytest.mark.parametrize(("content", "offset"), [
    (b"\x7fELF\x02\x01\x01\x00\x80", 8),
    ("// caf\u00e9\n".encode() + b"\xff", 9),
    (b"x" * (1024 * 1024 - 1) + "\u00e9".encode() + b"ok\xc3", 1024 * 1024 + 3),  # split across chunks
])
def test_script_file_that_is_not_utf8_text_is_refused_with_the_offset(project: Path, content: bytes,
                                                                      offset: int) -> None:
    (project / "src" / "worker.js").write_bytes(content)
    assert problems(_script_at("src/worker.js")) == [
        f"workers.yaml:5:11: scripts.my-worker.path: script file 'src/worker.js' is not UTF-8 text (byte offset "
        f"{offset}): a service-worker script is uploaded as JavaScript source; is it a binary or a differently "
        f"encoded file?"
    ]


def test_utf8_script_split_across_chunks_is_accepted(project: Path) -> None:
    content = b"x" * (1024 * 1024 - 1) + "\u20ac".encode()
    (project / "src" / "worker.js").write_bytes(content)
    Path("workers.yaml").write_text(textwrap.dedent(_script_at("src/worker.js")))
    assert load_manifest(Path("workers.yaml"), {}).scripts[0].content_sha256 == hashlib.sha256(content).hexdigest()


def test_quoted_version_says_to_remove_the_quotes(project: Path) -> None:
    assert problems(f"""\
        version: "1"
        account_id: {ACCOUNT}
        scripts: {{}}
    """) == ["workers.yaml:1:10: version: version must be the number 1, not the string '1': remove the quotes"]


# --- environments ------------------------------------------------------------------------

from deployer.manifest.load import check_manifest  # noqa: E402

ENVIRONMENTS = f"""\
    version: 1
    account_id: {ACCOUNT}
    scripts:
      a:
        path: src/worker.js
        bindings:
          - type: plain_text
            name: ENVIRONMENT
            text: production
    environments:
      staging:
        name_suffix: -staging
        scripts:
          a:
            bindings:
              - type: plain_text
                name: 1bad
                text: ${{STAGING_ONLY}}
      production: {{}}
"""


def env_problems(text: str, environment: str | None, environ: Mapping[str, str] | None = None) -> list[str]:
    Path("workers.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), environ or {}, environment=environment)
    return [str(d) for d in excinfo.value.diagnostics]


def test_a_problem_inside_an_environment_is_reported_where_it_is_written(project: Path) -> None:
    assert env_problems(ENVIRONMENTS, "staging") == [
        "workers.yaml:17:19: environments.staging.scripts.a.bindings[0].name: "
        "'1bad' is not a valid JavaScript identifier",
        "workers.yaml:18:19: environments.staging.scripts.a.bindings[0].text: "
        "environment variable STAGING_ONLY is not set (export it, or write ${STAGING_ONLY:-default})",
    ]


def test_a_variable_used_only_by_another_environment_need_not_be_set(project: Path) -> None:
    Path("workers.yaml").write_text(textwrap.dedent(ENVIRONMENTS), encoding="utf-8")
    manifest = load_manifest(Path("workers.yaml"), {}, environment="production")
    assert [s.name for s in manifest.scripts] == ["a"]


def test_check_manifest_checks_the_base_and_every_environment(project: Path) -> None:
    Path("workers.yaml").write_text(textwrap.dedent(ENVIRONMENTS), encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        check_manifest(Path("workers.yaml"), {})
    assert len(excinfo.value.diagnostics) == 2
    summary = check_manifest(Path("workers.yaml"), {}, environment="production")
    assert summary.environments == ("production",)


def test_allow_unset_checks_everything_but_unset_variables(project: Path) -> None:
    Path("workers.yaml").write_text(textwrap.dedent(ENVIRONMENTS), encoding="utf-8")
    with pytest.raises(ManifestError) as excinfo:
        check_manifest(Path("workers.yaml"), {}, allow_unset=True)
    assert [d.message for d in excinfo.value.diagnostics] == ["'1bad' is not a valid JavaScript identifier"]


def test_unknown_environment_is_an_error_listing_the_known_ones(project: Path) -> None:
    Path("workers.yaml").write_text(textwrap.dedent(ENVIRONMENTS), encoding="utf-8")
    with pytest.raises(DeployerError, match=r"unknown environment 'prod': workers.yaml declares staging, production"):
        load_manifest(Path("workers.yaml"), {}, environment="prod")


def test_without_an_environments_map_env_only_names_the_state_file(project: Path) -> None:
    Path("workers.yaml").write_text(f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  a:\n    path: src/worker.js\n")
    manifest = load_manifest(Path("workers.yaml"), {}, environment="anything")
    assert manifest.environment == "anything" and [s.name for s in manifest.scripts] == ["a"]


def test_a_typo_in_an_environment_is_reported_even_when_another_is_planned(project: Path) -> None:
    assert env_problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
        environments:
          staging:
            scripts:
              a:
                pth: src/other.js
    """, None) == [
        "workers.yaml:10:9: environments.staging.scripts.a.pth: unexpected key 'pth' (did you mean 'path'?)"
    ]


def test_a_script_added_by_an_environment_needs_a_path(project: Path) -> None:
    assert env_problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts: {{}}
        environments:
          staging:
            scripts:
              jobs:
                compatibility_date: "2024-09-23"
    """, "staging") == ["workers.yaml:8:9: environments.staging.scripts.jobs: missing required key 'path'"]


def test_name_suffix_must_keep_script_names_valid(project: Path) -> None:
    long_name = "a" * 60
    assert env_problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          {long_name}:
            path: src/worker.js
        environments:
          staging:
            name_suffix: -staging
    """, "staging") == [
        f"workers.yaml:4:3: scripts.{long_name}: '{long_name}' with name_suffix '-staging' is not "
        "a valid script name (lowercase letters, digits, '-' and '_', not starting with '-', at most 63 characters)"
    ]


def test_unknown_environment_key_is_reported(project: Path) -> None:
    assert env_problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts: {{}}
        environments:
          staging:
            suffix: -s
    """, None) == [
        "workers.yaml:6:5: environments.staging.suffix: unexpected key 'suffix' (did you mean 'name_suffix'?)"
    ]


# --- ES modules ------------------------------------------------------------------------------


def test_modules_need_format_modules(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            modules: [src/other.js]
    """) == ["workers.yaml:6:5: scripts.a.modules: extra modules need 'format: modules' "
             "(a service-worker script is one file)"]


def test_a_module_outside_the_entry_directory_is_refused(project: Path) -> None:
    Path("lib.js").write_text("export {}\n")
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            format: modules
            path: src/worker.js
            modules: [lib.js, src/other.js, ./src/other.js, ../escape.js]
    """) == [
        "workers.yaml:7:15: scripts.a.modules[0]: 'lib.js' is outside src/, the directory of the entry module "
        "'src/worker.js': module names are relative to it",
        "workers.yaml:7:37: scripts.a.modules[2]: './src/other.js' is the same module as line 7 ('other.js')",
        "workers.yaml:7:53: scripts.a.modules[3]: '../escape.js' leads outside the manifest's directory",
    ]


def test_module_type_format_and_compatibility_date_are_checked(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            format: module
            path: src/worker.js
            compatibility_date: 2024-02-30
          b:
            format: modules
            path: src/worker.js
            modules: [{{path: src/other.js, type: text/x-python}}]
            compatibility_date: "24-01-01"
    """) == [
        "workers.yaml:5:13: scripts.a.format: 'module' is not a script format; expected one of: "
        "service-worker, modules (did you mean 'modules'?)",
        "workers.yaml:7:25: scripts.a.compatibility_date: '2024-02-30' is not a calendar date",
        "workers.yaml:11:42: scripts.b.modules[0].type: 'text/x-python' is not a module type; expected one of: "
        "application/javascript+module, text/javascript+module, application/javascript, text/javascript, "
        "application/wasm, text/plain, application/octet-stream, application/source-map (did you mean 'text/plain'?)",
        "workers.yaml:12:25: scripts.b.compatibility_date: '24-01-01' is not a date written YYYY-MM-DD",
    ]


def test_script_file_larger_than_one_upload_can_carry_is_refused(project: Path) -> None:
    with open(project / "src" / "worker.js", "wb") as handle:
        handle.truncate(100 * 1000 * 1000 + 1)  # sparse: nothing is written or read
    assert problems(_script_at("src/worker.js")) == [
        "workers.yaml:5:11: scripts.my-worker.path: script file 'src/worker.js' is 100000001 bytes; one upload "
        "to Cloudflare carries at most 100 MB (and a Worker at most 10 MB after gzip)"
    ]
