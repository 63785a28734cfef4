"""Renderers turn one Plan into JSON (the contract's format), text and markdown."""
from __future__ import annotations

import json

from deployer.models import Action, Change, Plan, Reason
from tests.factories import deployed_kv, deployed_plain, deployed_secret
from deployer.plan.render import render_json, render_markdown, render_text

KV = "kv_namespace"
SCRIPT = "script"
NS_ID = "0f2ac74b498b48028cb68387c421e279"

PLAN = Plan(
    changes=(
        Change(KV, "cache", Action.CREATE, resource_name="my-app-cache"),
        Change(
            SCRIPT,
            "my-worker",
            Action.UPDATE,
            (Reason.CONTENT, Reason.BINDINGS),
            bindings=(
                deployed_kv("CACHE", None),
                deployed_plain("ENVIRONMENT", "production"),
                deployed_secret("API_KEY"),
            ),
            previous_bindings=(
                deployed_plain("ENVIRONMENT", "staging"),
                deployed_secret("API_KEY"),
                deployed_secret("OLD_TOKEN"),
            ),
            removed_secrets=("OLD_TOKEN",),
        ),
        Change(SCRIPT, "same", Action.NO_OP),
        Change(SCRIPT, "gone", Action.DELETE),
    ),
    lineage="l",
    serial=3,
)


def test_json_plan_has_the_contract_shape_with_no_ops_listed() -> None:
    doc = json.loads(render_json(PLAN))
    assert doc["format_version"] == 1
    assert [(c["type"], c["name"], c["action"]) for c in doc["changes"]] == [
        ("kv_namespace", "cache", "create"),
        ("script", "my-worker", "update"),
        ("script", "same", "no-op"),
        ("script", "gone", "delete"),
    ]
    assert doc["changes"][1]["reasons"] == ["content", "bindings"]
    assert doc["changes"][1]["removed_secrets"] == ["OLD_TOKEN"]
    assert doc["summary"] == {"create": 1, "update": 1, "delete": 1, "no-op": 1}


def test_json_summary_counts_forget_only_when_present() -> None:
    plan = Plan((Change(KV, "old", Action.FORGET, resource_name="t", resource_id=NS_ID),))
    assert json.loads(render_json(plan))["summary"] == {
        "create": 0, "update": 0, "delete": 0, "no-op": 0, "forget": 1
    }


def test_text_plan_shows_binding_diffs_and_hides_no_ops() -> None:
    text = render_text(PLAN)
    assert text == (
        "deployer plan\n"
        "\n"
        '  + kv_namespace cache (title "my-app-cache", created or adopted by title; id known after apply)\n'
        "  ~ script my-worker (content, bindings)\n"
        "      + binding CACHE: kv_namespace (known after apply)\n"
        '      ~ binding ENVIRONMENT: plain_text "staging" -> plain_text "production"\n'
        "      - binding OLD_TOKEN: secret_text (sensitive)\n"
        "      - secret OLD_TOKEN (deleted from the script's secrets)\n"
        "  - script gone\n"
        "\n"
        "Plan: 1 to create, 1 to update, 1 to delete, 1 unchanged.\n"
    )


def test_text_plan_is_colored_only_when_asked() -> None:
    assert "\x1b[" not in render_text(PLAN)
    assert "\x1b[32m  + kv_namespace cache" in render_text(PLAN, color=True)


def test_text_plan_without_changes_says_so() -> None:
    text = render_text(Plan((Change(SCRIPT, "same", Action.NO_OP),), environment="staging"))
    assert text.startswith("deployer plan (environment: staging)\n")
    assert "No changes" in text
    assert "Plan: 0 to create, 0 to update, 0 to delete, 1 unchanged." in text


def test_markdown_plan_is_a_table_for_a_pull_request() -> None:
    md = render_markdown(PLAN)
    assert md.startswith("### deployer plan\n\n**Plan: 1 to create, 1 to update, 1 to delete, 1 unchanged.**\n")
    assert "| action | type | name | details |" in md
    assert "| ~ update | script | `my-worker` | content, bindings<br>+ binding CACHE" in md
    assert "| - delete | script | `gone` |" in md
    assert "`same`" not in md


def test_no_changes_without_refresh_says_only_the_state_was_compared() -> None:
    quiet = Plan((Change(SCRIPT, "same", Action.NO_OP),))
    assert ("No changes: the manifest matches the recorded state (Cloudflare was not read; 'deployer plan "
            "--refresh' compares with what is deployed).\n") in render_text(quiet)
    assert "No changes: the manifest matches the recorded state, and Cloudflare matches the state.\n" in render_text(
        quiet, refreshed=True)
    assert render_markdown(quiet).endswith(
        "No changes: the manifest matches the recorded state (Cloudflare was not read; `deployer plan --refresh` "
        "compares with what is deployed).\n")
    assert render_markdown(quiet, refreshed=True).endswith(
        "No changes: the manifest matches the recorded state, and Cloudflare matches the state.\n")


def test_json_plan_lists_every_binding_with_its_action_and_values() -> None:
    (_, script, same, gone) = json.loads(render_json(PLAN))["changes"]
    assert script["bindings"] == [
        {"name": "CACHE", "type": "kv_namespace", "action": "create", "new": {"namespace_id": "(known after apply)"}},
        {"name": "ENVIRONMENT", "type": "plain_text", "action": "update", "old": {"text": "staging"},
         "new": {"text": "production"}},
        {"name": "API_KEY", "type": "secret_text", "action": "no-op", "old": "(sensitive)", "new": "(sensitive)"},
        {"name": "OLD_TOKEN", "type": "secret_text", "action": "delete", "old": "(sensitive)"},
    ]
    assert same["bindings"] == [] and gone["bindings"] == []
    assert "drift" not in script  # only a plan made with --refresh can say what drifted
