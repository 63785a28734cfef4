"""Values from the manifest are shown escaped in text and markdown (issue 11, class 8): no title,
bucket name, environment or value can forge a plan line, colour the terminal or break a
pull-request table."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deployer.escape import escape_markdown, escape_text
from deployer.models import Action, Change, DeployedBinding, Plan, Reason
from deployer.plan.render import render_markdown, render_text, render_warnings
from tests.cli_runner import run
from tests.fake_cloudflare import FAKE_ACCOUNT, FakeCloudflare

FORGERY = "x\x1b[2K\r  + script evil\n  - script prod\u2028\x9b31m\x07"


@pytest.mark.parametrize("char", [chr(c) for c in (*range(0x20), 0x7f, *range(0x80, 0xa0))]
                         + ["\u2028", "\u2029", "\u202e", "\u2066"])
def test_every_control_character_is_written_as_an_escape(char: str) -> None:
    shown = escape_text(f"a{char}b")
    assert shown.startswith("a\\") and shown.endswith("b") and char not in shown
    assert shown.isprintable()


def test_text_escaping_keeps_printable_text_and_is_idempotent() -> None:
    assert escape_text("café — 東京 \\n") == "café — 東京 \\n"
    assert escape_text("a\nb\r\tc\x1b") == "a\\nb\\r\\tc\\x1b"
    assert escape_text(escape_text(FORGERY)) == escape_text(FORGERY)


def test_markdown_escaping_makes_table_and_html_characters_literal() -> None:
    assert escape_markdown("a|b`c<img src=x>[link](u) *em* _u_ ~s~ &amp;\n") == (
        "a\\|b\\`c\\<img src=x\\>\\[link\\](u) \\*em\\* \\_u\\_ \\~s\\~ \\&amp;\\\\n")


@pytest.mark.parametrize(("value", "span"), [
    ("my-worker", "`my-worker`"),
    ("a`b", "``a`b``"),
    ("``x", "``` ``x ```"),
    ("p|q\n", "`p\\|q\\n`"),
])
def test_a_markdown_code_span_is_fenced_longer_than_the_backticks_inside(value: str, span: str) -> None:
    assert escape_markdown(value, code=True) == span


def _hostile_plan() -> Plan:
    return Plan((
        Change("kv_namespace", "cache", Action.CREATE, resource_name=FORGERY),
        Change("script", "w", Action.UPDATE, bindings=(DeployedBinding("r2_bucket", "B", (("bucket_name", FORGERY),)),),
               previous_bindings=(DeployedBinding("r2_bucket", "B", (("bucket_name", "old|`"),)),)),
    ), environment="prod\n  + script evil")


def test_text_plan_keeps_one_line_per_change_whatever_the_values() -> None:
    text = render_text(_hostile_plan())
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text and "\x9b" not in text
    lines = text.splitlines()
    assert not any(line.lstrip().startswith(("+ script evil", "- script prod")) for line in lines)
    assert lines[0] == "deployer plan (environment: prod\\n  + script evil)"
    assert len(lines) == 7  # header, blank, namespace, script, its binding, blank, summary


def test_markdown_plan_keeps_one_row_per_change_whatever_the_values() -> None:
    md = render_markdown(_hostile_plan())
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 4  # header, rule, two changes
    assert all(line.count("|") - line.count("\\|") == 5 for line in table)
    assert "\x1b" not in md and "`old\\|\\``" not in md
    assert "~ binding B: r2_bucket old\\|\\` -> r2_bucket x\\\\x1b\\[2K" in md


def test_warnings_escape_what_they_name() -> None:
    gone = Plan((Change("kv_namespace", "cache", Action.CREATE, (Reason.DRIFT,), resource_name=FORGERY),))
    (warning,) = render_warnings(gone)
    assert warning.isprintable() and "\\x1b" in warning


# --- end to end -----------------------------------------------------------------------------


HOSTILE_BUCKET = """\
      - type: analytics_engine
        name: B
        dataset: "b\\n  + script evil2 | `x` <img src=y>"
"""
HOSTILE = f"""\
version: 1
account_id: {FAKE_ACCOUNT}
kv_namespaces:
  cache:
    title: "x\\e[2K\\r  + script evil\\n  - script prod\\L"
scripts:
  w:
    path: w.js
    bindings:
      - type: kv_namespace
        name: CACHE
        namespace: cache
{HOSTILE_BUCKET}      - type: plain_text
        name: T
        text: "t\\e[31m\\n  + script evil3"
"""


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    (tmp_path / "w.js").write_text("addEventListener('fetch', () => {})\n")
    (tmp_path / "workers.yaml").write_text(HOSTILE)
    return tmp_path


def test_a_hostile_manifest_cannot_forge_lines_in_the_text_plan(hostile: Path) -> None:
    result = run("plan", cwd=hostile)
    assert "\x1b" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not any("script evil" in line and not line.startswith(("  + kv_namespace", "      + binding"))
                   for line in lines), result.stdout
    assert [line for line in lines if line.startswith("  + ")] == [
        ('  + kv_namespace cache (title "x\\u001b[2K\\r  + script evil\\n  - script prod\\u2028", created or adopted '
        "by title; id known after apply)"),
        "  + script w",
    ]


def test_a_hostile_manifest_cannot_break_the_markdown_table(hostile: Path) -> None:
    md = run("plan", "--format", "markdown", cwd=hostile).stdout
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 3  # header and two changes: nothing spilled into a row of its own
    assert re.search(r"(?<!\\)<img", md) is None and "\x1b" not in md
    assert "+ binding B: analytics_engine b\\\\n  + script evil2 \\| \\`x\\` \\<img src=y\\><br>" in md


def test_json_keeps_the_values_exactly(hostile: Path) -> None:
    doc = json.loads(run("plan", "--format", "json", cwd=hostile).stdout)
    assert doc["changes"][0]["title"] == "x\x1b[2K\r  + script evil\n  - script prod\u2028"


def test_warnings_about_a_hostile_title_stay_on_one_line(hostile: Path, fake_cloudflare: FakeCloudflare) -> None:
    env = fake_cloudflare.environ()
    manifest = hostile / "workers.yaml"  # without the bucket: Cloudflare refuses such a name
    manifest.write_text(manifest.read_text().replace(HOSTILE_BUCKET, ""))
    run("apply", "--auto-approve", cwd=hostile, env=env)
    namespace_id = json.loads((hostile / ".deployer" / "state.json").read_text())["kv_namespaces"]["cache"]["id"]
    del fake_cloudflare.kv_namespaces()[namespace_id]
    result = run("plan", "--refresh", cwd=hostile, env=env)
    (warning,) = [line for line in result.stderr.splitlines() if "deleted outside" in line]
    assert warning.startswith("warning: kv_namespace cache (title 'x\\x1b[2K\\r  + script evil")
    assert "\x1b" not in result.stderr and "+ script evil" not in result.stderr.replace(warning, "")


def test_state_list_keeps_one_line_per_item_whatever_the_title(hostile: Path) -> None:
    from deployer.models import ResourceState, State
    from deployer.state.document import state_to_json

    state = State(lineage="l", serial=1, account_id=FAKE_ACCOUNT,
                  resources=(ResourceState("kv_namespace", "cache", FORGERY + "\textra column", "id1"),))
    (hostile / ".deployer").mkdir()
    (hostile / ".deployer" / "state.json").write_text(json.dumps(state_to_json(state)))
    (line,) = run("state", "list", cwd=hostile).stdout.splitlines()
    assert line.split("\t") == ["kv_namespace.cache", "id1", escape_text(FORGERY) + "\\textra column"]
