"""Validation of the second round's bindings and owned resources: references to scripts and to
r2_buckets/d1_databases/queues, cycles among scripts, environment suffixes on owned names.
YAML in, the exact diagnostics (with positions) out."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from deployer.errors import ManifestError
from deployer.manifest.load import load_manifest
from deployer.models import Manifest

ACCOUNT = "0f2ac74b498b48028cb68387c421e279"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "w.js").write_text("addEventListener('fetch', () => {})\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(text: str) -> Path:
    path = Path("workers.yaml")
    path.write_text(f"version: 1\naccount_id: {ACCOUNT}\n" + textwrap.dedent(text), encoding="utf-8")
    return path


def problems(text: str, environment: str | None = None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(_write(text), {}, environment=environment)
    return [str(d) for d in caught.value.diagnostics]


def loaded(text: str, environ: Mapping[str, str] | None = None, environment: str | None = None) -> Manifest:
    return load_manifest(_write(text), environ or {}, environment=environment)


def test_scripts_binding_each_other_in_a_cycle_are_refused_naming_the_cycle(project: Path) -> None:
    assert problems("""\
        scripts:
          a:
            path: w.js
            bindings: [{type: service, name: B, script: b}]
          b:
            path: w.js
            bindings:
              - {type: durable_object_namespace, name: ROOMS, class_name: Room, script: c}
          c:
            path: w.js
            bindings: [{type: service, name: A, script: a}]
    """) == [
        ("workers.yaml:13:49: scripts.c.bindings[0].script: a -> b -> c -> a: these scripts bind each other in a "
        "cycle, so none of them can be uploaded first (Cloudflare refuses a binding to a Worker that does not exist "
        "yet); remove one of these bindings"),
    ]


def test_a_literal_service_naming_a_script_of_the_manifest_counts_in_a_cycle(project: Path) -> None:
    assert problems("""\
        scripts:
          a:
            path: w.js
            bindings: [{type: service, name: B, script: b}]
          b:
            path: w.js
            bindings: [{type: service, name: A, service: a}]
    """) == [
        ("workers.yaml:9:50: scripts.b.bindings[0].service: a -> b -> a: these scripts bind each other in a cycle, "
        "so none of them can be uploaded first (Cloudflare refuses a binding to a Worker that does not exist yet); "
        "remove one of these bindings"),
    ]


def test_a_script_binding_its_own_class_or_itself_is_no_cycle(project: Path) -> None:
    manifest = loaded("""\
        scripts:
          a:
            path: w.js
            bindings:
              - {type: durable_object_namespace, name: SELF, class_name: Counter, script: a}
              - {type: durable_object_namespace, name: OWN, class_name: Counter}
              - {type: service, name: ME, script: a}
    """)
    assert [b.get("script") for b in manifest.scripts[0].bindings] == ["a", None, "a"]


def test_a_chain_of_scripts_is_no_cycle_however_long(project: Path) -> None:
    body = "".join(f"  s{i}:\n    path: w.js\n    bindings: [{{type: service, name: NEXT, script: s{i + 1}}}]\n"
                   for i in range(1500))
    manifest = loaded("scripts:\n" + body + "  s1500:\n    path: w.js\n")
    assert len(manifest.scripts) == 1501


def test_a_script_reference_to_an_unknown_script_is_refused(project: Path) -> None:
    assert problems("""\
        scripts:
          api:
            path: w.js
            bindings: [{type: service, name: AUTH, script: auht}]
          auth:
            path: w.js
    """) == [
        ("workers.yaml:6:52: scripts.api.bindings[0].script: script 'auht' is not declared under scripts "
        "(did you mean 'auth'?)"),
    ]


@pytest.mark.parametrize(("binding", "message"), [
    ("{type: r2_bucket, name: B, bucket: pics}", "bucket 'pics' is not declared: add it under r2_buckets"),
    ("{type: d1, name: DB, database: main}", "database 'main' is not declared: add it under d1_databases"),
    ("{type: queue, name: Q, queue: jobs}", "queue 'jobs' is not declared: add it under queues"),
])
def test_a_reference_to_an_undeclared_resource_is_refused(project: Path, binding: str, message: str) -> None:
    found = problems(f"""\
        scripts:
          api:
            path: w.js
            bindings: [{binding}]
    """)
    assert len(found) == 1 and found[0].endswith(message)


def test_a_durable_object_binding_takes_script_or_script_name_not_both(project: Path) -> None:
    assert problems("""\
        scripts:
          a:
            path: w.js
            bindings: [{type: durable_object_namespace, name: R, class_name: Room, script: a, script_name: b}]
    """) == [
        ("workers.yaml:6:16: scripts.a.bindings[0]: a durable_object_namespace binding takes script_name or script, "
        "not both"),
    ]


def test_a_service_binding_needs_service_or_script(project: Path) -> None:
    assert problems("""\
        scripts:
          a:
            path: w.js
            bindings: [{type: service, name: S, entrypoint: Admin}]
    """) == ["workers.yaml:6:16: scripts.a.bindings[0]: a service binding needs service or script"]


def test_binding_values_are_checked_by_their_rules(project: Path) -> None:
    assert problems("""\
        scripts:
          a:
            path: w.js
            bindings:
              - {type: queue, name: Q, queue_name: jobs, delivery_delay: 50000}
              - {type: d1, name: DB, id: not-a-uuid}
              - {type: r2_bucket, name: B, bucket_name: Shop_Assets}
              - {type: send_email, name: E, allowed_sender_addresses: []}
    """) == [
        "workers.yaml:7:66: scripts.a.bindings[0].delivery_delay: 50000 is above the maximum, 43200",
        ("workers.yaml:8:34: scripts.a.bindings[1].id: 'not-a-uuid' is not a UUID (such as "
        "0c3a4f8e-5b2d-4e3f-9a1b-2c3d4e5f6a7b)"),
        ("workers.yaml:9:49: scripts.a.bindings[2].bucket_name: 'Shop_Assets' is not a valid R2 bucket name (3 to 63 "
        "lowercase letters, digits and '-', starting and ending with a letter or digit)"),
    ]


def test_owned_resources_need_valid_unique_names(project: Path) -> None:
    assert problems("""\
        r2_buckets:
          assets: {name: x}
        d1_databases:
          main: {name: shop-db}
          copy: {name: shop-db}
        queues:
          jobs: {name: "jobs queue"}
        scripts:
          a: {path: w.js}
    """) == [
        ("workers.yaml:4:18: r2_buckets.assets.name: 'x' is not a valid R2 bucket name (3 to 63 lowercase letters, "
        "digits and '-', starting and ending with a letter or digit)"),
        "workers.yaml:7:16: d1_databases.copy.name: duplicate name 'shop-db' (first at line 6)",
        ("workers.yaml:9:16: queues.jobs.name: 'jobs queue' is not a valid queue name (1 to 63 letters, digits, '-' "
        "and '_')"),
    ]


_ENVIRONMENTS = """\
    kv_namespaces: {cache: {title: shop-cache}}
    r2_buckets: {assets: {name: shop-assets}}
    d1_databases: {main: {name: shop-db}}
    queues: {jobs: {name: shop-jobs}}
    scripts:
      api:
        path: w.js
        bindings:
          - {type: r2_bucket, name: ASSETS, bucket: assets}
          - {type: queue, name: JOBS, queue: jobs}
    environments:
      staging:
        name_suffix: -staging
        d1_databases: {main: {name: shop-db-preview}}
      plain: {}
"""


def test_an_environment_with_a_name_suffix_gets_its_own_resources(project: Path) -> None:
    manifest = loaded(_ENVIRONMENTS, environment="staging")
    assert {(r.type, r.name) for r in manifest.resources} == {
        ("kv_namespace", "shop-cache-staging"), ("r2_bucket", "shop-assets-staging"),
        ("d1_database", "shop-db-preview"),  # set by the environment itself: used as written
        ("queue", "shop-jobs-staging"),
    }


def test_the_base_and_an_environment_without_suffix_keep_the_names_as_written(project: Path) -> None:
    for environment in (None, "plain"):
        manifest = loaded(_ENVIRONMENTS, environment=environment)
        assert {r.name for r in manifest.resources} == {"shop-cache", "shop-assets", "shop-db", "shop-jobs"}


def test_a_suffixed_name_that_breaks_the_kinds_rule_is_refused_where_it_is_written(project: Path) -> None:
    assert problems("""\
        r2_buckets: {assets: {name: shop-assets}}
        scripts:
          a: {path: w.js}
        environments:
          staging:
            name_suffix: _staging
    """, environment="staging") == [
        ("workers.yaml:3:29: r2_buckets.assets.name: 'shop-assets' with name_suffix '_staging' is not a valid R2 "
        "bucket name (3 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"),
    ]
