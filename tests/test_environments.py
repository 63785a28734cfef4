"""The environment overlay, pure: YAML nodes in, merged YAML nodes (and where each came from) out."""
from __future__ import annotations

import textwrap

import pytest
import yaml

from deployer.manifest.environments import environment_names, overlay
from deployer.manifest.yaml_nodes import compose, plain_value

BASE = """\
version: 1
account_id: 0123456789abcdef0123456789abcdef
kv_namespaces:
  cache: {title: app-cache}
  sessions: {title: app-sessions}
scripts:
  api:
    path: src/api.js
    compatibility_flags: [nodejs_compat, streams]
    bindings:
      - {type: kv_namespace, name: CACHE, namespace_id: 0f2ac74b498b48028cb68387c421e279}
      - {type: plain_text, name: ENVIRONMENT, text: production}
      - {type: secret_text, name: API_KEY, text: "${API_KEY}"}
  web:
    path: src/web.js
"""


def merged(environments: str, environment: str | None = "staging") -> dict:
    root = compose(BASE + textwrap.dedent(environments))
    result = overlay(root, environment)
    return plain_value(result.root, {})


def test_without_an_environment_the_base_is_used_and_environments_dropped() -> None:
    data = merged("environments:\n  staging: {account_id: fedcba9876543210fedcba9876543210}\n", None)
    assert data == yaml.safe_load(BASE)


def test_an_unknown_environment_name_gives_the_base() -> None:
    # Refusing an unknown name is the caller's decision (it knows whether --env was given).
    assert merged("environments:\n  staging: {}\n", "prod") == yaml.safe_load(BASE)


def test_mappings_merge_key_by_key_and_values_replace() -> None:
    data = merged("""\
        environments:
          staging:
            account_id: fedcba9876543210fedcba9876543210
            kv_namespaces:
              cache: {title: app-cache-staging}
              extra: {title: staging-only}
    """)
    assert data["account_id"] == "fedcba9876543210fedcba9876543210"
    assert data["kv_namespaces"] == {
        "cache": {"title": "app-cache-staging"},
        "sessions": {"title": "app-sessions"},
        "extra": {"title": "staging-only"},
    }
    assert data["scripts"] == yaml.safe_load(BASE)["scripts"]


def test_a_binding_replaces_the_base_binding_of_its_name_whole_and_new_names_are_appended() -> None:
    data = merged("""\
        environments:
          staging:
            scripts:
              api:
                bindings:
                  - {type: kv_namespace, name: CACHE, namespace: cache}
                  - {type: plain_text, name: DEBUG, text: "1"}
    """)
    assert data["scripts"]["api"]["bindings"] == [
        {"type": "kv_namespace", "name": "CACHE", "namespace": "cache"},  # no namespace_id left over
        {"type": "plain_text", "name": "ENVIRONMENT", "text": "production"},
        {"type": "secret_text", "name": "API_KEY", "text": "${API_KEY}"},
        {"type": "plain_text", "name": "DEBUG", "text": "1"},
    ]
    assert data["scripts"]["api"]["path"] == "src/api.js"


def test_other_lists_replace_and_a_new_script_is_added() -> None:
    data = merged("""\
        environments:
          staging:
            scripts:
              api: {compatibility_flags: [nodejs_compat]}
              jobs: {path: src/jobs.js}
    """)
    assert data["scripts"]["api"]["compatibility_flags"] == ["nodejs_compat"]
    assert list(data["scripts"]) == ["api", "web", "jobs"]
    assert data["scripts"]["jobs"] == {"path": "src/jobs.js"}


def test_name_suffix_is_kept_apart_not_merged() -> None:
    root = compose(BASE + "environments:\n  staging:\n    name_suffix: -staging\n")
    result = overlay(root, "staging")
    assert result.name_suffix is not None and result.name_suffix.value == "-staging"
    assert "name_suffix" not in plain_value(result.root, {})


@pytest.mark.parametrize(
    ("merged_path", "written_at"),
    [
        (("scripts", "api", "bindings", 1, "text"), ("environments", "staging", "scripts", "api", "bindings", 0, "text")),
        (("scripts", "api", "bindings", 0, "name"), ("scripts", "api", "bindings", 0, "name")),
        (("scripts", "api", "bindings", 3), ("environments", "staging", "scripts", "api", "bindings", 1)),
        (("scripts", "jobs", "path"), ("environments", "staging", "scripts", "jobs", "path")),
        (("account_id",), ("environments", "staging", "account_id")),
        (("scripts", "web", "path"), ("scripts", "web", "path")),
    ],
)
def test_source_path_says_where_a_merged_value_was_written(merged_path: tuple, written_at: tuple) -> None:
    root = compose(BASE + textwrap.dedent("""\
        environments:
          staging:
            account_id: fedcba9876543210fedcba9876543210
            scripts:
              api:
                bindings:
                  - {type: plain_text, name: ENVIRONMENT, text: staging}
                  - {type: plain_text, name: DEBUG, text: "1"}
              jobs: {path: src/jobs.js}
    """))
    assert overlay(root, "staging").source_path(merged_path) == written_at


def test_environment_names_in_file_order_or_none_without_the_map() -> None:
    assert environment_names(compose(BASE)) is None
    root = compose(BASE + "environments:\n  staging: {}\n  production:\n")
    assert environment_names(root) == ("staging", "production")


def _manifest_with(scripts: int) -> str:
    body = "".join(
        f"  s{i}:\n    path: w.js\n    bindings:\n      - {{type: plain_text, name: A, text: '{i}'}}\n"
        for i in range(scripts)
    )
    return (
        "version: 1\naccount_id: 0123456789abcdef0123456789abcdef\nscripts:\n" + body
        + "environments:\n  staging:\n    scripts:\n      s0:\n        bindings:\n"
        "          - {type: plain_text, name: B, text: x}\n"
    )


@pytest.mark.parametrize("environment", [None, "staging"])
def test_loading_does_work_linear_in_the_number_of_scripts(tmp_path, monkeypatch, environment) -> None:
    # Counted, not timed: a quadratic walk in source_path once made a 5,000-script plan take 23 s.
    import deployer.manifest.environments as environments
    from deployer.manifest.load import load_manifest

    (tmp_path / "w.js").write_text("// w\n")
    calls = {"n": 0}
    real = environments._is_key

    def counting(node, name):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return real(node, name)

    monkeypatch.setattr(environments, "_is_key", counting)
    counts = []
    for scripts in (100, 400):
        (tmp_path / "workers.yaml").write_text(_manifest_with(scripts))
        calls["n"] = 0
        load_manifest(tmp_path / "workers.yaml", {}, environment=environment)
        counts.append(calls["n"])
    assert counts[1] <= 5 * max(counts[0], 1), counts
