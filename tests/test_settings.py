"""Upload settings (deployer/kinds/settings.py): the schema and checks, what the metadata gets
(beside the ownership tag), the per-setting digests the state keeps, what a plan shows, and how
Cloudflare's settings are read back."""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from deployer.apply.upload import upload_metadata
from deployer.errors import ManifestError
from deployer.kinds.settings import (
    deployed_settings,
    frozen,
    remote_settings,
    setting_changes,
    setting_digests,
    settings_metadata,
    settings_mismatches,
)
from deployer.manifest.load import load_manifest
from deployer.models import SCRIPT, Action, Change, Reason, ScriptState, SettingChange, State
from deployer.plan.planner import make_plan, resolver
from deployer.plan.render import plan_document, render_markdown, render_text
from deployer.state.document import state_from_json, state_to_json
from tests.factories import ACCOUNT, make_manifest, make_script, sha

ALL = """\
placement: {mode: smart}
limits: {cpu_ms: 50}
observability:
  enabled: true
  head_sampling_rate: 0.25
  logs: {enabled: true, invocation_logs: false}
logpush: true
tail_consumers:
  - service: audit-tail
  - script: tail
tags: [team-a, billing]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("api", "tail"):
        (tmp_path / f"{name}.js").write_text("addEventListener('fetch', () => {})\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _manifest_text(settings: str, suffix: str = "") -> str:
    environments = f"environments:\n  staging:\n    name_suffix: {suffix}\n" if suffix else ""
    return (f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  tail:\n    path: tail.js\n  api:\n    path: api.js\n"
            + textwrap.indent(textwrap.dedent(settings), "    ") + environments)


def problems(settings: str) -> list[str]:
    Path("workers.yaml").write_text(_manifest_text(settings))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), {})
    return [str(d) for d in excinfo.value.diagnostics]


# --- the manifest ------------------------------------------------------------------------------


def test_every_setting_is_kept_as_written_in_the_registrys_order(project: Path) -> None:
    Path("workers.yaml").write_text(_manifest_text(ALL))
    api = load_manifest(Path("workers.yaml"), {}).scripts[1]
    assert [key for key, _ in api.settings] == ["placement", "limits", "observability", "logpush",
                                                 "tail_consumers", "tags"]
    assert dict(api.settings)["observability"] == frozen(
        {"enabled": True, "head_sampling_rate": 0.25, "logs": {"enabled": True, "invocation_logs": False}})


def test_a_script_without_settings_has_none(project: Path) -> None:
    Path("workers.yaml").write_text(_manifest_text(""))
    assert load_manifest(Path("workers.yaml"), {}).scripts[1].settings == ()


def test_placement_takes_only_smart(project: Path) -> None:
    assert problems("placement: {mode: dumb}\n") == [
        "workers.yaml:8:23: scripts.api.placement.mode: 'dumb' is not a valid mode; expected one of: smart"]


def test_cpu_ms_is_a_positive_integer_up_to_five_minutes(project: Path) -> None:
    assert problems("limits: {cpu_ms: 0}\n") == ["workers.yaml:8:22: scripts.api.limits.cpu_ms: 0 is below the minimum, 1"]
    assert problems("limits: {cpu_ms: 300001}\n") == [
        "workers.yaml:8:22: scripts.api.limits.cpu_ms: 300001 is above the maximum, 300000"]


def test_head_sampling_rate_is_between_0_and_1(project: Path) -> None:
    assert problems("observability: {enabled: true, head_sampling_rate: 1.5}\n") == [
        "workers.yaml:8:56: scripts.api.observability.head_sampling_rate: 1.5 is above the maximum, 1"]


def test_observability_needs_enabled(project: Path) -> None:
    assert problems("observability: {head_sampling_rate: 0.5}\n") == [
        "workers.yaml:8:20: scripts.api.observability: missing required key 'enabled'"]


def test_a_tail_consumer_names_a_service_or_a_script_of_the_manifest(project: Path) -> None:
    assert problems("""\
        tail_consumers:
          - {service: x, script: tail}
          - {}
          - script: tial
    """) == [
        "workers.yaml:9:30: scripts.api.tail_consumers[0].script: a tail consumer takes service (a Worker's name) "
        "or script (a script of this manifest), not both",
        "workers.yaml:10:9: scripts.api.tail_consumers[1]: a tail consumer needs service (a Worker's name) or "
        "script (a script of this manifest)",
        "workers.yaml:11:17: scripts.api.tail_consumers[2].script: script 'tial' is not a script of this manifest "
        "(a Worker deployed elsewhere is named with service:)",
    ]


def test_a_filled_in_tail_consumer_is_checked_as_a_script_name(project: Path) -> None:
    Path("workers.yaml").write_text(_manifest_text("tail_consumers: [{service: '${TAIL}'}]\n"))
    with pytest.raises(ManifestError) as excinfo:
        load_manifest(Path("workers.yaml"), {"TAIL": "Not A Name"})
    assert [str(d) for d in excinfo.value.diagnostics] == [
        "workers.yaml:8:32: scripts.api.tail_consumers[0].service: '${TAIL}' expands to a value that is not a valid "
        "script name (lowercase letters, digits, '-' and '_', not starting with '-', at most 63 characters)"]


def test_tags_cannot_claim_ownership_or_repeat(project: Path) -> None:
    assert problems("tags: [a, 'deployer:project=other', a]\n") == [
        "workers.yaml:8:15: scripts.api.tags[1]: 'deployer:project=other' starts with 'deployer:project=', which "
        "deployer keeps for the ownership tag: set the top-level project: key instead",
        "workers.yaml:8:41: scripts.api.tags[2]: duplicate tag 'a' (first at line 8)",
    ]


# --- the metadata --------------------------------------------------------------------------------


def _deployed(project: Path, settings: str, env: str | None = None) -> tuple[tuple[str, object], ...]:
    Path("workers.yaml").write_text(_manifest_text(settings, "-staging" if env else ""))
    manifest = load_manifest(Path("workers.yaml"), {}, environment=env)
    api = next(s for s in manifest.scripts if s.manifest_key == "api")
    return deployed_settings(api.settings, resolver((), manifest.scripts))


def test_metadata_carries_each_setting_and_a_tail_consumer_script_by_its_name(project: Path) -> None:
    metadata = settings_metadata(_deployed(project, ALL))
    assert metadata == {
        "placement": {"mode": "smart"}, "limits": {"cpu_ms": 50},
        "observability": {"enabled": True, "head_sampling_rate": 0.25,
                          "logs": {"enabled": True, "invocation_logs": False}},
        "logpush": True, "tail_consumers": [{"service": "audit-tail"}, {"service": "tail"}],
        "tags": ["team-a", "billing"]}


def test_a_tail_consumer_script_gets_the_environments_suffix_and_a_service_does_not(project: Path) -> None:
    metadata = settings_metadata(_deployed(project, ALL, env="staging"))
    assert metadata["tail_consumers"] == [{"service": "audit-tail"}, {"service": "tail-staging"}]


def test_the_ownership_tag_comes_first_then_the_scripts_own() -> None:
    script = make_script("api")
    metadata = upload_metadata(script, [], project="shop", settings={"tags": ["team-a"], "logpush": True})
    assert metadata == {"body_part": "script", "bindings": [], "logpush": True,
                        "tags": ["deployer:project=shop", "team-a"]}
    assert upload_metadata(script, [], settings={"tags": ["team-a"]})["tags"] == ["team-a"]


def test_without_settings_or_migrations_the_metadata_is_exactly_the_seeds() -> None:
    assert upload_metadata(make_script("api"), [], settings={}, migrations=None) == {
        "body_part": "script", "bindings": []}


# --- plan and state ------------------------------------------------------------------------------


LIMITS_50 = (("limits", frozen({"cpu_ms": 50})),)
LOGPUSH = (("logpush", frozen(True)),)


def _recorded(settings: tuple[tuple[str, object], ...]) -> ScriptState:
    return ScriptState("api", sha("// v1"), settings_sha256=setting_digests(settings))  # type: ignore[arg-type]


def test_each_setting_is_created_updated_deleted_or_unchanged() -> None:
    now = (("limits", frozen({"cpu_ms": 100})), ("observability", frozen({"enabled": True})), *LOGPUSH)
    before = setting_digests((*LIMITS_50, *LOGPUSH, ("tags", frozen(["a"]))))
    assert setting_changes(now, before) == (
        SettingChange("limits", Action.UPDATE, frozen({"cpu_ms": 100})),
        SettingChange("observability", Action.CREATE, frozen({"enabled": True})),
        SettingChange("logpush", Action.NO_OP, frozen(True)),
        SettingChange("tags", Action.DELETE),
    )


def test_a_changed_setting_is_an_update_with_reason_settings_shown_in_every_format() -> None:
    script = dataclasses.replace(make_script("api"), settings=(("limits", frozen({"cpu_ms": 100})),))
    plan = make_plan(make_manifest(script), State(account_id=ACCOUNT, scripts=(_recorded(LIMITS_50),)))
    change = SettingChange("limits", Action.UPDATE, frozen({"cpu_ms": 100}))
    assert plan.changes == (Change(SCRIPT, "api", Action.UPDATE, (Reason.SETTINGS,), settings=(change,)),)
    assert '  ~ script api (settings)\n      ~ setting limits: now {"cpu_ms":100}\n' in render_text(plan)
    assert '| ~ update | script | `api` | settings<br>\\~ setting limits: now {"cpu\\_ms":100} |' in render_markdown(plan)
    assert plan_document(plan)["changes"][0]["settings"] == [  # type: ignore[index]
        {"name": "limits", "action": "update", "value": {"cpu_ms": 100}}]


def test_unchanged_settings_plan_as_no_op() -> None:
    script = dataclasses.replace(make_script("api"), settings=LIMITS_50)
    plan = make_plan(make_manifest(script), State(account_id=ACCOUNT, scripts=(_recorded(LIMITS_50),)))
    assert plan.changes[0].action is Action.NO_OP


def test_a_removed_setting_is_an_update() -> None:
    plan = make_plan(make_manifest(make_script("api")), State(account_id=ACCOUNT, scripts=(_recorded(LOGPUSH),)))
    assert (plan.changes[0].reasons, plan.changes[0].settings) == (
        (Reason.SETTINGS,), (SettingChange("logpush", Action.DELETE),))
    assert "      - setting logpush (no longer sent: Cloudflare's default)\n" in render_text(plan)


def test_the_state_keeps_a_digest_per_setting_never_the_value() -> None:
    state = State("l", 1, ACCOUNT, scripts=(_recorded(LIMITS_50),))
    doc = state_to_json(state)
    assert doc["scripts"]["api"]["settings_sha256"] == {"limits": sha('{"cpu_ms":50}')}
    assert state_from_json(doc, "state.json") == state
    plain = state_to_json(State("l", 1, ACCOUNT, scripts=(_recorded(()),)))
    assert "settings_sha256" not in plain["scripts"]["api"]


# --- read back -----------------------------------------------------------------------------------


CLOUDFLARE_DEFAULTS = {"placement": {}, "limits": {}, "observability": {"enabled": False}, "logpush": False,
                       "tail_consumers": [], "tags": ["deployer:project=shop"], "usage_model": "standard"}


def test_cloudflares_defaults_and_the_ownership_tag_read_back_as_no_settings() -> None:
    assert remote_settings(CLOUDFLARE_DEFAULTS) == ()


def test_settings_read_back_in_the_form_they_are_sent() -> None:
    found = {**CLOUDFLARE_DEFAULTS, "limits": {"cpu_ms": 50}, "tags": ["deployer:project=shop", "team-a"],
             "tail_consumers": [{"service": "tail", "environment": "production"}]}
    assert remote_settings(found) == (("limits", frozen({"cpu_ms": 50})),
                                      ("tail_consumers", frozen([{"service": "tail"}])),
                                      ("tags", frozen(["team-a"])))


def test_verify_names_each_setting_cloudflare_does_not_have_as_sent() -> None:
    sent = (*LIMITS_50, ("observability", frozen({"enabled": False})))
    assert settings_mismatches(sent, CLOUDFLARE_DEFAULTS) == [
        'setting limits was sent as {"cpu_ms": 50} but Cloudflare has (not set)']
    assert settings_mismatches(sent, {**CLOUDFLARE_DEFAULTS, "limits": {"cpu_ms": 50}}) == []
