"""End to end, "Safe by default" (issue 10): apply never replaces a script it does not hold,
ownership tags, a state belongs to one project, honest plan wording, and the small CLI gaps."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run
from tests.factories import write_project
from tests.fake_cloudflare import FAKE_ACCOUNT, FAKE_ZONE, FakeCloudflare
from tests.test_cli import SCRIPTS_URL

TAG = "deployer:project="


def _state(directory: Path) -> dict:
    return json.loads((directory / ".deployer" / "state.json").read_text())


def _with_project(manifest: Path, name: str) -> Path:
    manifest.write_text(manifest.read_text().replace("version: 1\n", f"version: 1\nproject: {name}\n", 1))
    return manifest


# --- 1. no silent overwrite ------------------------------------------------------------------


def test_apply_refuses_an_unrecorded_script_that_exists_with_no_request_but_the_list(
    project: Path, api: FakeCloudflare
) -> None:
    api.add_script("my-worker", b"// made in the dashboard\n")
    result = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert ("error: refusing to overwrite script(s) that exist in Cloudflare but not in the state: my-worker. "
            "Adopt them with 'deployer import NAME' (then plan again), or pass --allow-overwrite") in result.stderr
    assert "  deployer import my-worker\n" in result.stderr
    assert [(r.method, r.path) for r in api.requests] == [("GET", SCRIPTS_URL)]
    assert api.scripts()["my-worker"]["content"] == b"// made in the dashboard\n"
    assert not (project / ".deployer" / "state.json").exists()


def test_allow_overwrite_replaces_it(project: Path, api: FakeCloudflare) -> None:
    api.add_script("my-worker", b"// made in the dashboard\n")
    run("apply", "--auto-approve", "--allow-overwrite", cwd=project, env=api.environ())
    assert api.scripts()["my-worker"]["content"] == (project / "script.js").read_bytes()
    assert not any(r.method == "GET" and r.path == SCRIPTS_URL for r in api.requests)  # nothing to check


def test_the_list_is_read_once_whatever_the_number_of_scripts(tmp_path: Path, api: FakeCloudflare) -> None:
    names = [f"w-{i:03}" for i in range(40)]
    write_project(tmp_path / "many", names)
    api.add_script("w-017")
    api.add_script("w-031")
    result = run("apply", "--auto-approve", cwd=tmp_path / "many", env=api.environ(), expect=1)
    assert "not in the state: w-017, w-031." in result.stderr
    assert len(api.requests) == 1


def test_an_apply_that_creates_nothing_new_reads_no_list(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    api.clear_requests()
    (project / "script.js").write_text("// v2\n")
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert [(r.method, r.path) for r in api.requests] == [("PUT", f"{SCRIPTS_URL}/my-worker")]


def test_apply_refresh_shares_its_script_list_with_the_check(project: Path, api: FakeCloudflare) -> None:
    api.add_script("visit-counter")
    result = run("apply", "--refresh", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "not in the state: visit-counter." in result.stderr
    assert api.count("GET", SCRIPTS_URL) == 1


def _zone_project(directory: Path) -> Path:
    directory.mkdir()
    (directory / "script.js").write_text("addEventListener('fetch', e => e.respondWith(new Response('hi')))\n")
    (directory / "workers.yaml").write_text(f"version: 1\nzone_id: {FAKE_ZONE}\nscripts:\n  my-worker:\n"
                                            "    path: script.js\n")
    return directory


def test_zone_mode_reads_the_zones_script_instead_of_a_list(tmp_path: Path, api: FakeCloudflare) -> None:
    fresh = _zone_project(tmp_path / "fresh")
    run("apply", "--auto-approve", cwd=fresh, env=api.environ())
    assert [(r.method, r.path) for r in api.requests] == [("GET", f"/zones/{FAKE_ZONE}/workers/script"),
                                                          ("PUT", f"/zones/{FAKE_ZONE}/workers/script")]
    api.clear_requests()
    other = _zone_project(tmp_path / "other")  # another state, same zone: the zone runs fresh's script
    refused = run("apply", "--auto-approve", cwd=other, env=api.environ(), expect=1)
    assert f"refusing to overwrite the script that zone {FAKE_ZONE} already runs" in refused.stderr
    assert "--allow-overwrite" in refused.stderr
    assert [r.method for r in api.requests] == ["GET"]
    run("apply", "--auto-approve", "--allow-overwrite", cwd=other, env=api.environ())


# --- 2. ownership tags -----------------------------------------------------------------------


def test_project_key_tags_every_upload(project: Path, api: FakeCloudflare) -> None:
    _with_project(project / "workers.yaml", "sample-shop")
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    uploads = api.find("PUT", path_regex=r"/workers/scripts/[^/]+$")
    assert len(uploads) == 3
    assert all(r.metadata["tags"] == [f"{TAG}sample-shop"] for r in uploads)
    (put,) = [r for r in uploads if r.path.endswith("/my-worker")]
    assert put.metadata == {  # the seed's metadata plus the tag, nothing else
        "body_part": "script",
        "bindings": [{"type": "kv_namespace", "name": "myNamespace", "namespace_id": "0f2ac74b498b48028cb68387c421e279"}],
        "tags": [f"{TAG}sample-shop"],
    }
    assert _state(project)["project"] == "sample-shop"


def test_without_project_key_the_upload_has_no_tags(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert all("tags" not in r.metadata for r in api.find("PUT", path_regex=r"/workers/scripts/[^/]+$"))


def test_another_projects_script_names_that_project_and_is_never_imported_without_allow_overwrite(
    project: Path, api: FakeCloudflare
) -> None:
    _with_project(project / "workers.yaml", "sample-shop")
    api.add_script("my-worker", tags=(f"{TAG}billing", "team:payments"))
    refused = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "deployer import my-worker   (tagged by project billing: import and overwrite both need " \
           "--allow-overwrite)" in refused.stderr
    imported = run("import", "my-worker", cwd=project, env=api.environ(), expect=1)
    assert ("error: refusing to import script my-worker: it is tagged as project 'billing''s (tag "
            "deployer:project=billing) and this manifest's project is 'sample-shop'") in imported.stderr
    assert "--allow-overwrite" in imported.stderr
    assert not (project / ".deployer" / "state.json").exists()
    run("import", "my-worker", "--allow-overwrite", cwd=project, env=api.environ())
    assert "my-worker" in _state(project)["scripts"]


def test_a_script_tagged_by_this_project_is_imported(project: Path, api: FakeCloudflare) -> None:
    _with_project(project / "workers.yaml", "sample-shop")
    api.add_script("my-worker", tags=(f"{TAG}sample-shop",))
    run("import", "my-worker", cwd=project, env=api.environ())
    assert _state(project)["project"] == "sample-shop"


def test_a_manifest_without_project_does_not_take_a_tagged_script(project: Path, api: FakeCloudflare) -> None:
    api.add_script("my-worker", tags=(f"{TAG}billing",))
    result = run("import", "my-worker", cwd=project, env=api.environ(), expect=1)
    assert "it is tagged as project 'billing''s" in result.stderr and "this manifest sets no project:" in result.stderr


def test_project_key_is_checked_like_every_manifest_value(project: Path) -> None:
    manifest = _with_project(project / "workers.yaml", "'shop api'")
    result = run("validate", cwd=project, expect=1)
    assert ("workers.yaml:3:10: project: 'shop api' is not a valid project name (letters, digits, '.', '_' and "
            "'-', starting with a letter or digit, at most 63 characters)") in result.stderr
    manifest.write_text(manifest.read_text().replace("'shop api'", "${PROJECT}"))
    assert "expands to a value that is not a valid project name" in run(
        "validate", cwd=project, env={"PROJECT": "a/b"}, expect=1).stderr
    run("validate", cwd=project, env={"PROJECT": "shop.api-2"})


# --- 3. a state belongs to one project --------------------------------------------------------


def test_a_state_of_another_project_is_refused_before_any_request(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    assert _state(project)["project"] == "project/workers.yaml"  # no repository here: directory and file
    _with_project(project / "workers.yaml", "renamed")
    api.clear_requests()
    for command in (["plan"], ["plan", "--refresh"], ["apply", "--auto-approve"], ["refresh"],
                    ["import", "my-worker"]):
        result = run(*command, cwd=project, env=api.environ(), expect=1)
        assert ("was written by project 'project/workers.yaml', but workers.yaml is project 'renamed': planning "
                "against it would delete that project's scripts") in result.stderr, command
    assert api.requests == []
    run("plan", "--claim-state", cwd=project)
    run("apply", "--auto-approve", "--claim-state", cwd=project, env=api.environ())
    assert _state(project)["project"] == "renamed"
    run("plan", cwd=project)


def test_a_state_written_before_projects_is_adopted_by_the_first_apply(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    path = project / ".deployer" / "state.json"
    old = json.loads(path.read_text())
    del old["project"]
    path.write_text(json.dumps(old))
    run("plan", "--detailed-exitcode", cwd=project)  # read, not refused
    api.clear_requests()
    run("apply", "--auto-approve", cwd=project, env=api.environ())  # nothing to change: only adopted
    assert api.requests == []
    adopted = _state(project)
    assert adopted["project"] == "project/workers.yaml" and adopted["serial"] == old["serial"] + 1


# --- 4. honest plan wording ------------------------------------------------------------------


def test_no_changes_says_what_was_compared(project: Path, api: FakeCloudflare) -> None:
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    text = run("plan", cwd=project).stdout
    assert ("No changes: the manifest matches the recorded state (Cloudflare was not read; "
            "'deployer plan --refresh' compares with what is deployed).") in text
    markdown = run("plan", "--format", "markdown", cwd=project).stdout
    assert "No changes: the manifest matches the recorded state (Cloudflare was not read; " \
           "`deployer plan --refresh` compares with what is deployed)." in markdown
    refreshed = run("plan", "--refresh", cwd=project, env=api.environ()).stdout
    assert "No changes: the manifest matches the recorded state, and Cloudflare matches the state." in refreshed


# --- 9. progress -----------------------------------------------------------------------------


def test_apply_numbers_each_finished_change_and_ends_with_the_total_time(project: Path, api: FakeCloudflare) -> None:
    result = run("apply", "--auto-approve", "--parallelism", "3", cwd=project, env=api.environ())
    numbered = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in numbered] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert numbered[0].startswith("[1/4] created kv_namespace counts (title 'sample-project-counts', id ")
    assert all(" s elapsed)" in line for line in numbered)
    assert {line.split("] ")[1].split(" (")[0] for line in numbered[1:]} == {
        "created script hello-modules", "created script my-worker", "created script visit-counter"}
    assert "Apply complete: 4 created, 0 updated, 0 deleted. Took " in result.stdout


# --- 10. small contract gaps -----------------------------------------------------------------


def test_validate_accepts_the_state_options_and_reads_no_state(project: Path) -> None:
    assert "valid" in run("validate", "--state", "elsewhere.json", cwd=project).stderr
    assert not (project / "elsewhere.json").exists()
    refused = run("validate", "--state-name", "x", cwd=project, expect=1)
    assert "--state-name names a state in PostgreSQL" in refused.stderr


def test_version_and_short_help(project: Path) -> None:
    from deployer import __version__

    assert run("--version").stdout == f"deployer {__version__}\n"
    assert run("-h").stdout == run("--help").stdout
    assert "Usage: deployer plan [OPTIONS]" in run("plan", "-h").stdout
    assert "Usage: deployer state list [OPTIONS]" in run("state", "list", "-h").stdout


def test_shell_completion_is_offered_and_completes_commands(tmp_path: Path) -> None:
    assert "--install-completion" in run("--help").stdout
    shown = subprocess.run([sys.executable, "-m", "deployer", "--show-completion", "bash"], capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "_DEPLOYER_COMPLETE=complete_bash" in shown.stdout
    env = {**os.environ, "_DEPLOYER_COMPLETE": "complete_bash", "COMP_WORDS": "deployer pl", "COMP_CWORD": "1"}
    completed = subprocess.run([sys.executable, "-m", "deployer"], capture_output=True, text=True, env=env,
                               timeout=60, cwd=tmp_path)
    assert completed.stdout.split() == ["plan"]


@pytest.mark.parametrize(("environ", "tty", "expected"), [
    ({}, True, True),
    ({}, False, False),
    ({"NO_COLOR": ""}, True, True),  # only a non-empty NO_COLOR counts (no-color.org)
    ({"NO_COLOR": "1"}, True, False),
    ({"TERM": "dumb"}, True, False),
    ({"FORCE_COLOR": "1"}, False, True),
    ({"FORCE_COLOR": ""}, False, False),
    ({"FORCE_COLOR": "1", "TERM": "dumb"}, False, True),
    ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),
])
def test_colour_follows_no_color_force_color_and_dumb_terminals(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], tty: bool, expected: bool
) -> None:
    from deployer.cli.app import _use_color

    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    class Stream:
        def isatty(self) -> bool:
            return tty

    assert _use_color(False, Stream()) is expected  # type: ignore[arg-type]
    assert _use_color(True, Stream()) is False  # type: ignore[arg-type]


def test_force_color_colours_a_piped_plan(project: Path) -> None:
    assert "\x1b[32m" in run("plan", cwd=project, env={"FORCE_COLOR": "1"}).stdout
    assert "\x1b[" not in run("plan", cwd=project, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout


def test_init_plans_and_applies_its_es_module_starter(tmp_path: Path, api: FakeCloudflare) -> None:
    run("init", cwd=tmp_path)
    env = {**api.environ(), "CLOUDFLARE_ACCOUNT_ID": FAKE_ACCOUNT}
    run("apply", "--auto-approve", cwd=tmp_path, env=env)
    (put,) = api.find("PUT", f"{SCRIPTS_URL}/my-worker")
    assert put.metadata["main_module"] == "index.js"
    assert put.parts["index.js"].content_type == "application/javascript+module"
