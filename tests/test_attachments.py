"""Attachment kinds (routes, custom domains, crons, workers.dev, queue consumers) without the
network: their checks word for word, planning over manifest and state, and the state file."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from deployer.errors import ManifestError
from deployer.kinds.crons import cron_problem
from deployer.kinds.route import pattern_problem
from deployer.manifest.load import load_manifest
from deployer.models import Action, Attachment, Change, JsonValue, Plan, Reason
from deployer.plan.planner import RemoteSnapshot, make_plan
from deployer.state.document import make_record, state_from_json, state_to_json
from tests.factories import ACCOUNT, make_manifest, make_script, make_state, recorded

ZONE = "fedcba9876543210fedcba9876543210"


def route(pattern: str, script: str, zone_name: str | None = "example.com", *, zone_id: str | None = None,
          route_id: str | None = None) -> Attachment:
    return Attachment("route", pattern, script, (("zone_id", zone_id), ("zone_name", zone_name)), route_id)


def crons(script: str, *expressions: str) -> Attachment:
    return Attachment("crons", script, script, (("crons", tuple(sorted(expressions))),))


def planned(wanted: dict[str, tuple[Attachment, ...]], have: tuple[Attachment, ...],
            remote: RemoteSnapshot | None = None) -> list[Change]:
    scripts = [dataclasses.replace(make_script(name), attachments=attached) for name, attached in wanted.items()]
    state = dataclasses.replace(make_state(*(recorded(make_script(name)) for name in ("api", "web"))),
                                attachments=have)
    plan = make_plan(make_manifest(*scripts), state, remote)
    return [c for c in plan.changes if c.type != "script"]


# --- checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "zone", "problem"), [
    ("shop.example.com/*", "example.com", None),
    ("*.example.com/img/*", "example.com", None),
    ("*example.com/*", "example.com", None),
    ("https://example.com/api", "example.com", None),
    ("shop.example.com/a*b", None, "'*' may only end the path"),
    ("sh*op.example.com/", None, "'*' may only lead the host (as in *.example.com)"),
    ("shop.example.com/?q=1", None, "it has a query string (routes match the host and path only)"),
    ("/only/a/path", None, "it names no host (host/path, as in shop.example.com/api/*)"),
    ("shop.example.org/*", "example.com", "its host 'shop.example.org' is not in zone 'example.com'"),
    ("badexample.com/*", "example.com", "its host 'badexample.com' is not in zone 'example.com'"),
])
def test_route_patterns_follow_cloudflares_rules(pattern: str, zone: str | None, problem: str | None) -> None:
    assert pattern_problem(pattern, zone) == problem


@pytest.mark.parametrize(("cron", "problem"), [
    ("*/5 * * * *", None),
    ("0 3 * * mon-fri", None),
    ("10 7 1,15 JAN-MAR SUN", None),
    ("59 23 LW * *", None),
    ("0 0 L-3 * *", None),
    ("0 12 15W * *", None),
    ("0 0 * * 6#2", None),
    ("0 0 * * 6L", None),
    ("* * * *", "it has 4 fields; a cron has 5 (minute hour day-of-month month day-of-week)"),
    ("60 * * * *", "minute 60 is outside 0-59"),
    ("0 24 * * *", "hour 24 is outside 0-23"),
    ("0 0 0 * *", "day-of-month 0 is outside 1-31"),
    ("0 0 * 13 *", "month 13 is outside 1-12 or JAN-DEC"),
    ("0 0 * * 0", "day-of-week 0 is outside 1-7 or SUN-SAT (Sunday is 1 or SUN)"),
    ("0 0 * * FUNDAY", "day-of-week FUNDAY is outside 1-7 or SUN-SAT (Sunday is 1 or SUN)"),
    ("*/0 * * * *", "minute step /0 is outside 1-59"),
    ("*-5 * * * *", "minute '*-5' is not a value, range or step"),
])
def test_cron_expressions_are_read_as_cloudflare_reads_them(cron: str, problem: str | None) -> None:
    assert cron_problem(cron) == problem


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "a.js").write_text("addEventListener('fetch', () => {})\n")
    path = tmp_path / "workers.yaml"
    path.write_text(f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  api:\n    path: a.js\n{body}")
    return path


def _problems(tmp_path: Path, body: str, environ: dict[str, str] | None = None) -> list[str]:
    path = _write(tmp_path, body)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ or {})
    return [str(d).removeprefix(f"{path}:") for d in caught.value.diagnostics]


def test_trigger_problems_are_reported_at_their_lines(tmp_path: Path) -> None:
    body = ("    routes:\n"
            "      - {pattern: 'shop.example.com/a*b', zone_name: example.com}\n"
            "      - {pattern: 'x.example.com/*'}\n"
            "      - {pattern: 'x.example.com/*', zone_name: example.com}\n"
            "    custom_domains: [{hostname: '*.example.com'}, {hostname: a.org, zone_name: example.com}]\n"
            "    crons: ['0 0 * * 0']\n"
            "    workers_dev: 'yes'\n"
            "    queue_consumers: [{queue: jobs, max_batch_size: 500}, {queue: jobs}]\n")
    assert _problems(tmp_path, body) == [
        "7:19: scripts.api.routes[0].pattern: 'shop.example.com/a*b' is not a valid route pattern: '*' may only "
        "end the path",
        "8:9: scripts.api.routes[1]: a route needs zone_id or zone_name (the zone whose host it names)",
        "9:19: scripts.api.routes[2].pattern: duplicate route pattern 'x.example.com/*' (first at line 8)",
        "10:33: scripts.api.custom_domains[0].hostname: '*.example.com' is not a hostname (lowercase letters, digits "
        "and '-' in dot-separated labels; no wildcard, path or port)",
        "10:62: scripts.api.custom_domains[1].hostname: 'a.org' is not in zone 'example.com'",
        "11:13: scripts.api.crons[0]: '0 0 * * 0' is not a valid cron: day-of-week 0 is outside 1-7 or SUN-SAT "
        "(Sunday is 1 or SUN)",
        "12:18: scripts.api.workers_dev: expected a boolean, got a string",
        "13:53: scripts.api.queue_consumers[0].max_batch_size: 500 is above the maximum, 100",
        "13:67: scripts.api.queue_consumers[1].queue: the script consumes queue 'jobs' already (line 13); "
        "Cloudflare allows one consumer per script and queue",
    ]


def test_a_pattern_filled_from_a_variable_is_checked_without_showing_its_value(tmp_path: Path) -> None:
    body = "    routes: [{pattern: '${HOST}/*', zone_name: example.com}]\n"
    assert _problems(tmp_path, body, {"HOST": "shop.example.org"}) == [
        "6:24: scripts.api.routes[0].pattern: '${HOST}/*' expands to a value that is not a valid route pattern: "
        "its host 'shop.example.org' is not in zone 'example.com'"]


def test_a_consumer_names_a_queue_of_the_manifest_by_its_key_or_cloudflare_by_its_name(tmp_path: Path) -> None:
    body = "    queue_consumers: [{queue: jobs, dead_letter_queue: jobs-dlq, max_retries: 3}]\n"
    [consumer] = load_manifest(_write(tmp_path, body), {}).scripts[0].attachments
    assert consumer == Attachment("queue_consumer", "jobs:api", "api", (
        ("queue", "jobs"), ("dead_letter_queue", "jobs-dlq"), ("settings", JsonValue('{"max_retries":3}'))))


# --- planning ---------------------------------------------------------------------------


def test_a_new_route_is_created_and_a_recorded_one_is_left_alone() -> None:
    changes = planned({"api": (route("a.example.com/*", "api"), route("b.example.com/*", "api"))},
                      (route("b.example.com/*", "api", zone_id=ZONE, route_id="r2"),))
    assert [(c.name, c.action, c.reasons) for c in changes] == [
        ("a.example.com/*", Action.CREATE, ()), ("b.example.com/*", Action.NO_OP, ())]


def test_a_pattern_moved_to_another_script_is_an_update_keeping_its_id() -> None:
    have = route("a.example.com/*", "api", zone_id=ZONE, route_id="r1")
    [change] = planned({"web": (route("a.example.com/*", "web"),)}, (have,))
    assert change == Change("route", "a.example.com/*", Action.UPDATE, (Reason.SCRIPT,),
                            attachment=route("a.example.com/*", "web", route_id="r1"), previous_attachment=have)


def test_a_route_that_leaves_the_manifest_is_deleted_but_absent_crons_are_forgotten() -> None:
    changes = planned({"api": ()}, (route("a.example.com/*", "api", zone_id=ZONE, route_id="r1"),
                                    crons("api", "* * * * *")))
    assert [(c.type, c.action) for c in changes] == [("route", Action.DELETE), ("crons", Action.FORGET)]


def test_crons_of_a_deleted_script_are_deleted_with_it() -> None:
    [change] = planned({"api": ()}, (crons("web", "* * * * *"),))
    assert (change.type, change.name, change.action) == ("crons", "web", Action.DELETE)


def test_a_changed_cron_set_is_one_update_and_order_does_not_matter() -> None:
    have = crons("api", "0 0 * * *", "*/5 * * * *")
    assert [(c.action, c.reasons) for c in planned({"api": (crons("api", "*/5 * * * *", "0 0 * * *"),)}, (have,))] \
        == [(Action.NO_OP, ())]
    assert [(c.action, c.reasons) for c in planned({"api": (crons("api", "*/5 * * * *"),)}, (have,))] == [
        (Action.UPDATE, (Reason.CRONS,))]


def test_refresh_plans_an_attachment_gone_outside_as_a_create_and_a_changed_one_as_drift() -> None:
    have = (route("a.example.com/*", "api", zone_id=ZONE, route_id="r1"), crons("api", "* * * * *"))
    remote = RemoteSnapshot({}, {}, attachments={("route", "a.example.com/*"): None, ("crons", "api"): crons("api")})
    wanted = {"api": (route("a.example.com/*", "api"), crons("api", "* * * * *"))}
    changes = planned(wanted, have, remote)
    assert [(c.type, c.action, c.reasons) for c in changes] == [
        ("route", Action.CREATE, (Reason.DRIFT,)), ("crons", Action.UPDATE, (Reason.DRIFT,))]
    assert Plan(tuple(changes)).has_drift


# --- the state file ---------------------------------------------------------------------


def test_attachments_survive_the_state_file_and_are_absent_when_there_are_none() -> None:
    consumer = Attachment("queue_consumer", "jobs:api", "api", (
        ("queue", "jobs"), ("queue_id", "q1"), ("dead_letter_queue", None),
        ("settings", JsonValue('{"batch_size":10}'))), "c1")
    state = dataclasses.replace(make_state(), attachments=(
        crons("api", "*/5 * * * *"), consumer, route("a.example.com/*", "api", zone_id=ZONE, route_id="r1"),
        Attachment("workers_dev", "api", "api", (("enabled", False),))))

    doc = json.loads(json.dumps(state_to_json(state)))

    assert doc["attachments"]["queue_consumer"] == {
        "jobs:api": {"script": "api", "id": "c1", "queue": "jobs", "queue_id": "q1", "settings": {"batch_size": 10}}}
    assert state_from_json(doc, "state.json") == state
    assert "attachments" not in state_to_json(make_state())


def test_a_journal_record_carries_attachments_and_their_removal() -> None:
    doc, record = make_record(lineage="l", base_serial=1, serial=2, attachments=[crons("api", "* * * * *")],
                              removed_attachments=[("route", "a.example.com/*")])
    assert doc["removed_attachments"] == {"route": ["a.example.com/*"]}
    assert record.attachments == (crons("api", "* * * * *"),)
    assert record.removed_attachments == (("route", "a.example.com/*"),)
