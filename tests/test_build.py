"""build: {command: ...} on a script: run by plan and apply before the files are hashed, once per
command, output on stderr, a failure stopping before any request; --no-build skips it and
validate does not need its files yet. Also the warnings about an entry's default export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer.errors import DeployerError
from deployer.manifest.build import BuildStep, build_steps, run_builds
from deployer.manifest.entry_exports import has_default_export, imported_modules
from tests.cli_runner import run
from tests.fake_cloudflare import FakeCloudflare

ACCOUNT = "0123456789abcdef0123456789abcdef"
# Each run appends a line to builds.log, then writes the entry the manifest names.
MAKE_DIST = "echo run >> builds.log && mkdir -p dist && printf 'export default {}\\n' > dist/index.js"


def _project(tmp_path: Path, scripts: str) -> Path:
    (tmp_path / "workers.yaml").write_text(f'version: 1\naccount_id: "{ACCOUNT}"\nscripts:\n{scripts}')
    return tmp_path


def _built(command: str = MAKE_DIST, names: tuple[str, ...] = ("api",)) -> str:
    return "".join(f"  {name}:\n    path: dist/index.js\n    format: modules\n    build: {{command: {json.dumps(command)}}}\n"
                   for name in names)


def test_plan_runs_the_build_before_hashing_and_shows_its_output_on_stderr(tmp_path: Path) -> None:
    project = _project(tmp_path, _built(MAKE_DIST + " && echo done building && echo to-stderr >&2"))
    result = run("plan", "--format", "json", cwd=project)
    assert result.stderr.splitlines()[:3] == [f"build (api): {MAKE_DIST} && echo done building && echo to-stderr >&2",
                                              "done building", "to-stderr"]
    (change,) = json.loads(result.stdout)["changes"]
    assert {k: change[k] for k in ("type", "name", "action", "reasons")} == {
        "type": "script", "name": "api", "action": "create", "reasons": []}
    # Hashed after the build: the code the plan names is what the build made.
    built = (project / "dist" / "index.js").read_bytes()
    assert change["size"] == len(built)
    assert (project / "dist" / "index.js").read_text() == "export default {}\n"


def test_a_command_shared_by_several_scripts_runs_once(tmp_path: Path) -> None:
    project = _project(tmp_path, _built(names=("api", "web", "admin")))
    result = run("plan", cwd=project)
    assert "build (api, web, admin): " in result.stderr
    assert (project / "builds.log").read_text() == "run\n"


def test_no_build_skips_the_command_and_needs_the_files(tmp_path: Path) -> None:
    project = _project(tmp_path, _built())
    result = run("plan", "--no-build", cwd=project, expect=1)
    assert ("workers.yaml:5:11: scripts.api.path: script file 'dist/index.js' does not exist in "
            f"{project.resolve()}; it is made by the script's build command, which only plan and apply run "
            "(not with --no-build)") in result.stderr
    assert not (project / "builds.log").exists()
    run("plan", cwd=project)
    assert "build (" not in run("plan", "--no-build", cwd=project).stderr
    assert (project / "builds.log").read_text() == "run\n"


def test_validate_does_not_run_the_build_nor_need_its_files(tmp_path: Path) -> None:
    project = _project(tmp_path, _built())
    result = run("validate", cwd=project)
    assert result.stderr.splitlines() == [
        "warning: workers.yaml:5:11: scripts.api.path: 'dist/index.js' does not exist yet: the script's build "
        "command makes it, and plan and apply run that command first (validate does not)",
        "workers.yaml: valid (1 script, 0 kv_namespace(s))",
    ]
    assert not (project / "builds.log").exists()


def test_a_build_that_does_not_make_the_file_is_named_in_the_error(tmp_path: Path) -> None:
    project = _project(tmp_path, _built("true"))
    result = run("plan", cwd=project, expect=1)
    assert "script file 'dist/index.js' does not exist in" in result.stderr
    assert "; the script's build command ran but did not make it" in result.stderr


def test_a_failed_build_stops_apply_before_any_request(tmp_path: Path, api: FakeCloudflare) -> None:
    project = _project(tmp_path, _built("echo compiling && exit 3"))
    result = run("apply", "--auto-approve", cwd=project, env=api.environ(), expect=1)
    assert "compiling" in result.stderr
    assert ("error: the build command of script api exited with status 3: echo compiling && exit 3 (run in "
            f"{project.resolve()}); nothing was sent to Cloudflare") in result.stderr
    assert api.requests == []
    assert not (project / ".deployer" / "state.json").exists()


def test_apply_builds_then_uploads_what_was_built(tmp_path: Path, api: FakeCloudflare) -> None:
    project = _project(tmp_path, _built())
    run("apply", "--auto-approve", cwd=project, env=api.environ())
    (upload,) = api.find("PUT")
    assert upload.parts is not None and upload.parts["index.js"].data == b"export default {}\n"
    assert run("plan", "--detailed-exitcode", cwd=project).exit_code == 0  # rebuilt, same bytes: no changes


def test_the_command_is_run_as_written_so_no_secret_is_put_into_its_text(tmp_path: Path) -> None:
    canary = "build-secret-canary-7f3a"
    command = MAKE_DIST + " && test -n \"$BUILD_TOKEN\" && echo token-length ${#BUILD_TOKEN} && echo ${NOT_SET_ANYWHERE}"
    project = _project(tmp_path, _built(command))
    result = run("plan", cwd=project, env={"BUILD_TOKEN": canary})
    assert f"build (api): {command}" in result.stderr  # shown as written: $BUILD_TOKEN, not its value
    assert f"token-length {len(canary)}" in result.stderr  # the shell filled it from the environment
    assert canary not in result.stderr + result.stdout
    assert "valid" in run("validate", cwd=project).stderr  # ${NOT_SET_ANYWHERE} is the shell's, not unset


def test_an_environment_can_change_the_build_command(tmp_path: Path) -> None:
    project = _project(tmp_path, _built() + "environments:\n  staging:\n    name_suffix: -staging\n    scripts:\n"
                                            f"      api:\n        build: {{command: {json.dumps(MAKE_DIST + ' && echo staging build')}}}\n")
    result = run("plan", "--env", "staging", cwd=project)
    assert "build (api-staging): " in result.stderr and "staging build" in result.stderr


def test_the_build_timeout_stops_a_command_that_hangs(tmp_path: Path) -> None:
    project = _project(tmp_path, _built("sleep 30"))
    result = run("plan", "--build-timeout", "1", cwd=project, expect=1)
    assert "error: the build command of script api did not finish within 1 s (--build-timeout) and was stopped: " \
           "sleep 30" in result.stderr


def test_build_steps_group_scripts_by_command_in_first_use_order(tmp_path: Path) -> None:
    steps = build_steps([("a", "make x"), ("b", "make y"), ("c", "make x")], tmp_path)
    assert steps == (BuildStep("make x", ("a", "c"), tmp_path), BuildStep("make y", ("b",), tmp_path))


def test_run_builds_stops_at_the_first_failure_and_names_a_signal(tmp_path: Path) -> None:
    lines: list[str] = []
    steps = [BuildStep("echo one", ("a",), tmp_path), BuildStep("kill -9 $$", ("b", "c"), tmp_path),
             BuildStep("echo never", ("d",), tmp_path)]
    with pytest.raises(DeployerError, match=r"the build command of scripts b, c was killed by signal 9: kill -9 \$\$"):
        run_builds(steps, timeout=10, output=lines.append)
    assert lines == ["build (a): echo one", "one", "build (b, c): kill -9 $$"]


# --- format warnings (issue 15, part 4) ---------------------------------------------------------


def test_validate_and_plan_warn_about_an_entry_whose_exports_do_not_fit_its_format(tmp_path: Path) -> None:
    (tmp_path / "sw.js").write_text("export default { fetch() { return new Response('hi') } }\n")
    (tmp_path / "mod.js").write_text("addEventListener('fetch', e => e.respondWith(new Response('hi')))\n")
    project = _project(tmp_path, "  sw:\n    path: sw.js\n  mod:\n    path: mod.js\n    format: modules\n")
    expected = [
        "warning: workers.yaml:5:11: scripts.sw.path: 'sw.js' exports a default handler, but the script has no "
        "'format: modules', so it is uploaded as a service worker and that handler is never called: add "
        "'format: modules'",
        "warning: workers.yaml:7:11: scripts.mod.path: 'mod.js' has no 'export default', but the script has "
        "'format: modules': Cloudflare calls a module Worker's default export (fine if it only exports Durable "
        "Object classes; a service-worker script needs no format)",
    ]
    assert run("validate", cwd=project).stderr.splitlines()[:2] == expected
    plan = run("plan", "--format", "json", cwd=project)
    assert plan.stderr.splitlines() == expected
    assert json.loads(plan.stdout)["summary"]["create"] == 2  # warnings, not errors


def test_entries_that_fit_their_format_give_no_warning(project: Path) -> None:
    assert "warning" not in run("validate", cwd=project, env={"CLOUDFLARE_ACCOUNT_ID": ACCOUNT}).stderr


@pytest.mark.parametrize(("source", "expected"), [
    ("export default { fetch() {} }", True),
    ("const handler = {};\nexport { handler as default };", True),
    ('export { default } from "./app.js";', True),
    ("export default class extends WorkerEntrypoint {}", True),
    ('// export default {}\naddEventListener("fetch", () => {});', False),
    ('/* export default {} */ addEventListener("fetch", () => {});', False),
    ('const doc = "export default {}";', False),
    ("const doc = `export default ${x}`;", False),
    ("const r = /export default/; const q = a / b / c;", False),
    ("export { a, b };\nexport const defaults = 1;", False),
])
def test_has_default_export_reads_code_not_comments_strings_or_regexes(source: str, expected: bool) -> None:
    assert has_default_export(source) is expected


def test_imported_modules_are_the_static_and_dynamic_specifiers_once_each() -> None:
    source = ('import a from "./a.js";\nimport "../b.mjs";\nexport * from "./c.js";\n// import x from "./no.js"\n'
              'const d = await import("./d.js");\nimport { Hono } from "hono";\nimport a2 from "./a.js";')
    assert imported_modules(source) == ["./a.js", "../b.mjs", "./c.js", "./d.js", "hono"]
