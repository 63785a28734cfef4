"""The command line: one function per command, the confirmation prompt, exit codes and the one
error boundary (``main``). Also the composition root: builds the client, store and executor.

Heavy or network modules are imported inside the commands that need them, so ``validate``
and ``plan`` never import ``requests``.
"""
from __future__ import annotations

import enum
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional, TextIO

import typer

from deployer.cli.shared import (
    DebugOption,
    EnvOption,
    ExitStatus,
    FileOption,
    LockTimeoutOption,
    StateNameOption,
    StateOption,
    open_state,
    stderr,
    warn,
)
from deployer.cli.state import state_app
from deployer.cli.versions import register as register_version_commands
from deployer.errors import ApprovalRefused, DeployerError, Diagnostic, ManifestError, StateError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from deployer.manifest.build import BuildStep
    from deployer.state.backend import StateBackend
    from deployer.cloudflare.client import CloudflareClient
    from deployer.models import Drift, Manifest, Plan, State
    from deployer.plan.planner import RemoteSnapshot
    from deployer.state.siblings import OtherState


class PlanFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


class GraphFormat(str, enum.Enum):
    MERMAID = "mermaid"
    DOT = "dot"


app = typer.Typer(
    name="deployer",
    help="Deploy Cloudflare Workers scripts and their bindings from workers.yaml.",
    add_completion=True,  # --install-completion / --show-completion
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(state_app, name="state")


def _print_version(value: bool) -> None:
    if value:
        from deployer import __version__

        sys.stdout.write(f"deployer {__version__}\n")
        raise typer.Exit(ExitStatus.OK)


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
) -> None:
    """Deploy Cloudflare Workers scripts and their bindings from workers.yaml."""


def _load_manifest(file: Path, env: str | None, *, build_timeout: float | None = None,
                   warnings: bool = False) -> Manifest:
    """The manifest; with ``build_timeout``, after running its build commands (output on stderr)."""
    from deployer.manifest.load import Builder, load_manifest

    builder: Builder | None = None
    if build_timeout is not None:
        from deployer.manifest.build import run_builds

        def builder(steps: Sequence[BuildStep]) -> None:
            run_builds(steps, timeout=build_timeout, output=stderr)

    manifest = load_manifest(file, os.environ, environment=env, build=builder, warn=warn if warnings else None)
    if manifest.zone_id is not None:
        _warn_zone_id()
    return manifest


NoBuildOption = typer.Option(
    False, "--no-build", help="Do not run the scripts' build commands (build: {command: ...}); the files they make "
    "must exist (with a PLANFILE: the files built when the plan was made).")
BuildTimeoutOption = typer.Option(
    900.0, "--build-timeout", min=1.0, metavar="SECONDS", help="Stop a build command that runs longer.")


def _warn_zone_id() -> None:
    stderr(
        "warning: zone_id uses Cloudflare's deprecated single-script API "
        "(/zones/:zone_id/workers/script); prefer account_id"
    )


def _client(
    parallelism: int = 4, max_retry_wait: float = 300.0, rate_limit: tuple[int, float] = (1200, 300.0)
) -> CloudflareClient:
    from deployer.cloudflare.client import CloudflareClient

    client, warnings = CloudflareClient.from_environment(
        os.environ, pool_size=parallelism, max_retry_wait=max_retry_wait, rate_limit=rate_limit
    )
    for warning in warnings:
        stderr(f"warning: {warning}")
    _show_retries()
    return client


def _show_retries() -> None:
    """Show the client's retry notices (429 waits, 5xx retries) on stderr, so a long wait in
    CI is explained while it happens. (logging is imported here: validate and plan skip it.)"""
    import logging

    from deployer.redact import scrub

    class StderrHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            stderr(scrub(self.format(record)))  # whatever sys.stderr is now (tests swap it)

    logger = logging.getLogger("deployer.cloudflare")
    if not any(type(h).__name__ == "StderrHandler" for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("note: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _parse_rate_limit(text: str) -> tuple[int, float]:
    """``REQUESTS/SECONDS`` (``1200/300``) -> (1200, 300.0); a DeployerError otherwise."""
    requests_text, slash, seconds_text = text.partition("/")
    try:
        limit, window = int(requests_text), float(seconds_text)
    except ValueError:
        limit, window = 0, 0.0
    if not slash or limit < 1 or not 0 < window < float("inf"):
        raise DeployerError(
            f"--rate-limit {text!r} is not REQUESTS/SECONDS with both above 0, e.g. 1200/300 "
            "(Cloudflare's limit: 1200 requests per 300 seconds per user)"
        )
    return limit, window


def _show_warnings(the_plan: Plan, refreshed: bool = False) -> None:
    from deployer.plan.render import render_warnings

    for warning in render_warnings(the_plan, refreshed=refreshed):
        warn(warning)


def _plan_against(manifest: Manifest, current: State, remote: RemoteSnapshot | None,
                  others: Sequence[OtherState] = (), gradual: int | None = None) -> Plan:
    """The plan, refused (before any request) when it would adopt a resource that another
    environment's state records (``others``)."""
    from deployer.plan.planner import make_plan
    from deployer.state.asset_lists import read_asset_lists
    from deployer.state.siblings import refuse_adopting_theirs, shared_resources

    the_plan = make_plan(manifest, current, remote, shared=shared_resources(others), gradual=gradual,
                         asset_lists=read_asset_lists(manifest.path, current))
    if others:
        refuse_adopting_theirs(the_plan, manifest, others, _identity(manifest.path, manifest))
    return the_plan


def _other_environments(manifest: Manifest, store: StateBackend, state_name: str | None) -> list[OtherState]:
    from deployer.state.siblings import other_environment_states

    return other_environment_states(manifest, store, state_name_given=state_name is not None, warn=warn)


def _identity(file: Path, manifest: Manifest) -> str:
    from deployer.state.project import project_identity

    return project_identity(file, manifest.project)


def _check_target(manifest: Manifest, store: StateBackend, current: State, identity: str, *,
                  claim: bool = False) -> None:
    """Refuse a state recorded for another account or zone, or written by another project,
    naming which state it is; called before any request to Cloudflare."""
    from deployer.plan.planner import check_same_target

    try:
        check_same_target(manifest, current)
    except StateError as exc:
        raise StateError(f"state {store.description}: {exc}") from exc
    if current.project is not None and current.project != identity and not claim:
        raise StateError(
            f"state {store.description} was written by project {current.project!r}, but {manifest.path} is "
            f"project {identity!r}: planning against it would delete that project's scripts. Give this project "
            "its own state (--state, --state-name or --env); if it is the same project, moved or renamed, pass "
            "--claim-state (apply then records the new name in the state)"
        )


def _note_former_state(store: StateBackend) -> None:
    from deployer.state.backend import former_state_hint

    hint = former_state_hint(store)
    if hint is not None:
        warn(hint)


def _use_color(no_color: bool, stream: TextIO | None = None) -> bool:
    """Colour on a terminal, unless --no-color, a non-empty NO_COLOR or TERM=dumb; a non-empty
    FORCE_COLOR turns it on anywhere (NO_COLOR still wins, as no-color.org asks)."""
    if no_color or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    return (stream or sys.stdout).isatty()


GradualOption = typer.Option(
    None, "--gradual", min=1, max=99, metavar="PERCENT",
    help="Send each changed ES-modules script as a new version to PERCENT of the traffic, beside the current one "
    "(then 'deployer promote' or 'deployer rollback'); the plan says which scripts must be uploaded whole.")

ClaimStateOption = typer.Option(
    False, "--claim-state", help="Use a state written by another project identity (this project, moved or "
    "renamed); apply records the new identity in it."
)


@app.command()
def validate(
    files: Optional[list[Path]] = typer.Argument(
        None, help="Manifests to check (default: -f/--file); a pre-commit hook passes the changed ones."
    ),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    allow_unset: bool = typer.Option(
        False, "--allow-unset", help="An unset ${VAR} is not an error (hooks and editors without secrets)."
    ),
    debug: bool = DebugOption,
) -> int:
    """Check the manifest (the base and every environment, or only --env) and report every problem."""
    from deployer.manifest.load import check_manifest

    if state is not None or state_name is not None:
        # Accepted like on every command that reads a manifest; checked for form, never read (no network).
        open_state(file, env, state, state_name, peek=True)
    diagnostics: list[Diagnostic] = []
    for path in files or [file]:
        try:
            summary = check_manifest(path, os.environ, environment=env, allow_unset=allow_unset, warn=warn)
        except ManifestError as exc:
            diagnostics += exc.diagnostics
            continue
        if summary.zone_mode:
            _warn_zone_id()
        count = summary.scripts
        environments = f"; environments: {', '.join(summary.environments)}" if summary.environments else ""
        from deployer.kinds.registry import RESOURCE_KINDS

        owned = ", ".join(f"{n} {kind}(s)" for kind, n in summary.resources.items()
                          if n or RESOURCE_KINDS[kind].always_in_state)
        stderr(f"{path}: valid ({count} script{'s' if count != 1 else ''}, {owned}{environments})")
    if diagnostics:
        raise ManifestError(diagnostics)
    return ExitStatus.OK


@app.command()
def plan(
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    format: PlanFormat = typer.Option(PlanFormat.TEXT, "--format", help="text, json or markdown."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 2 when there are changes, 3 when --refresh found drift."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Save the plan for 'deployer apply PLANFILE'."),
    refresh: bool = typer.Option(False, "--refresh", help="Compare the state with Cloudflare first (network)."),
    no_color: bool = typer.Option(False, "--no-color", help="Plain text even on a terminal."),
    claim_state: bool = ClaimStateOption,
    no_build: bool = NoBuildOption,
    build_timeout: float = BuildTimeoutOption,
    gradual: Optional[int] = GradualOption,
    debug: bool = DebugOption,
) -> int:
    """Show what apply would change: create / update / delete / no-op per script and namespace.
    Runs the scripts' build commands first (their output on stderr)."""
    from deployer.plan.render import render_markdown, render_text, write_json

    manifest = _load_manifest(file, env, build_timeout=None if no_build else build_timeout, warnings=True)
    store = open_state(file, env, state, state_name, manifest.project)
    current = store.load()
    _check_target(manifest, store, current, _identity(file, manifest), claim=claim_state)
    _note_former_state(store)
    others = _other_environments(manifest, store, state_name)
    remote = None
    if refresh:
        client = _client()
        try:
            from deployer.remote import read_remote

            remote = read_remote(manifest, client, current)
        finally:
            client.close()
    the_plan = _plan_against(manifest, current, remote, others, gradual)
    if out is not None:
        from deployer.plan.planfile import write_planfile

        write_planfile(out, the_plan, manifest, refreshed=refresh, gradual=gradual)
        stderr(f"plan saved to {out}; apply it with: deployer apply {out}")
    _show_warnings(the_plan, refresh)
    match format:
        case PlanFormat.JSON:
            write_json(the_plan, sys.stdout)
        case PlanFormat.MARKDOWN:
            sys.stdout.write(render_markdown(the_plan, manifest, refreshed=refresh))
        case PlanFormat.TEXT:
            sys.stdout.write(render_text(the_plan, color=_use_color(no_color), refreshed=refresh))
    if detailed_exitcode and the_plan.has_drift:
        return ExitStatus.DRIFT
    return ExitStatus.CHANGES if detailed_exitcode and the_plan.has_changes else ExitStatus.OK


@app.command()
def apply(
    planfile: Optional[Path] = typer.Argument(None, help="A plan saved by 'deployer plan --out'."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Apply without asking (CI)."),
    parallelism: int = typer.Option(4, "--parallelism", min=1, max=64, help="Uploads in flight at once."),
    refresh: bool = typer.Option(False, "--refresh", help="Compare the state with Cloudflare before planning."),
    allow_overwrite: bool = typer.Option(
        False, "--allow-overwrite",
        help="Upload over scripts that exist in Cloudflare but not in the state (even another project's).",
    ),
    verify: bool = typer.Option(False, "--verify", help="Read each script's bindings back after its upload."),
    lock_timeout: float = LockTimeoutOption,
    max_retry_wait: float = typer.Option(
        300.0, "--max-retry-wait", min=0.0, help="Cap on seconds spent waiting to retry (429/5xx)."
    ),
    rate_limit: str = typer.Option(
        "1200/300", "--rate-limit", metavar="REQUESTS/SECONDS",
        help="Request budget shared by all parallel uploads (Cloudflare allows 1200 per 300 s per user; "
        "lower it when other jobs use the same token).",
    ),
    no_color: bool = typer.Option(False, "--no-color", help="Plain text even on a terminal."),
    claim_state: bool = ClaimStateOption,
    no_build: bool = NoBuildOption,
    build_timeout: float = BuildTimeoutOption,
    gradual: Optional[int] = GradualOption,
    message: Optional[str] = typer.Option(
        None, "--message", help="With --gradual: the versions' workers/message annotation, cut to 1,000 bytes "
        "(default: the subject of the git commit the manifest's work tree is at)."),
    tag: Optional[str] = typer.Option(
        None, "--tag", help="With --gradual: the versions' workers/tag annotation, at most 100 bytes (default: the "
        "short id of that commit)."),
    debug: bool = DebugOption,
) -> int:
    """Create namespaces, upload each created/changed script once, delete removed scripts.
    Runs the scripts' build commands first (their output on stderr); a failed build stops it
    before any request."""
    from deployer.apply.gradual import refuse_changing_gradual
    from deployer.apply.guard import CachedReads, check_before_apply_started
    from deployer.plan.render import render_text

    saved = None
    if planfile is not None:
        from deployer.plan.planfile import read_planfile

        saved = read_planfile(planfile)
        if isinstance(saved.get("manifest"), str) and file == Path("workers.yaml"):
            file = Path(saved["manifest"])  # type: ignore[arg-type]
        env = env or saved.get("environment")  # type: ignore[assignment]
        refresh = refresh or saved.get("refresh") is True  # re-read what the reviewed plan saw
        gradual = _planned_gradual(saved, planfile, gradual)
    budget = _parse_rate_limit(rate_limit)
    manifest = _load_manifest(file, env, build_timeout=None if no_build else build_timeout, warnings=True)
    annotations = _annotations(manifest, gradual, message, tag)  # a bad --tag fails before any request
    if verify:
        manifest.require_account("--verify")
    client = _client(parallelism, max_retry_wait, budget)  # missing credentials fail before any request
    store = open_state(file, env, state, state_name, manifest.project)
    identity = _identity(file, manifest)
    try:
        with store.lock(command="deployer apply", timeout=lock_timeout, warn=warn):
            current = store.load()
            _check_target(manifest, store, current, identity, claim=claim_state)  # before any request
            _note_former_state(store)
            others = _other_environments(manifest, store, state_name)
            reads = CachedReads(client)  # the guard and --refresh share one script list
            remote = None
            if refresh:
                from deployer.remote import read_remote

                remote = read_remote(manifest, reads, current, parallelism=parallelism)
            the_plan = _plan_against(manifest, current, remote, others, gradual)
            if saved is not None and planfile is not None:
                from deployer.plan.planfile import check_planfile

                check_planfile(saved, planfile, manifest, current, the_plan)

            def show_plan() -> None:
                sys.stdout.write(render_text(the_plan, color=_use_color(no_color), refreshed=refresh))
                _show_warnings(the_plan, refresh)

            try:
                refuse_changing_gradual(the_plan)  # before the checks below read anything
            except DeployerError:
                show_plan()
                raise
            # The checks' reads (the account's script list) go while the plan is shown and the first
            # uploads are read and built; apply_plan waits for their verdict before its first change.
            verdict = (check_before_apply_started(the_plan, current, manifest, reads) if not allow_overwrite
                       else lambda: None)
            # Meanwhile the connections the uploads will use are opened (one is the checks').
            client.open_connections(min(parallelism, _changes(the_plan)) - 1)
            show_plan()
            if not the_plan.has_changes or (saved is None and not auto_approve):
                verdict()  # nothing to apply, or a question to ask: only an apply that may go is asked for
            if not the_plan.has_changes:
                if current.lineage and current.project != identity:
                    store.record(project=identity)  # a state from before projects (or claimed) is adopted
                    store.commit()
                return ExitStatus.OK
            if saved is None and not auto_approve:
                _confirm()
            from deployer.apply.executor import apply_plan
            from deployer.cli.progress import ApplyReporter

            reporter = ApplyReporter.for_plan(the_plan, sys.stderr)
            _collect_from_now()
            try:
                result = apply_plan(the_plan, manifest, client, store, parallelism=parallelism, progress=reporter,
                                    verify=verify, project=identity, annotations=annotations, go=verdict)
            finally:
                reporter.close()
                store.commit()
    finally:
        client.close()
    print(
        f"Apply complete: {result.created} created, {result.updated} updated, {result.deleted} deleted"
        + (f", {result.forgotten} forgotten" if result.forgotten else "")
        + (f", {result.adopted} adopted" if result.adopted else "")
        + f". Took {reporter.elapsed():.1f} s."
    )
    _print_gradual_started(the_plan, store.state)
    return ExitStatus.OK


def _changes(plan: Plan) -> int:
    from deployer.models import Action

    return sum(1 for change in plan.changes if change.action is not Action.NO_OP)


def _collect_from_now() -> None:
    """Turn the cyclic garbage collector back on (``console()`` turns it off), for what may
    run long and make garbage: the apply's requests.

    Until now a run builds what it keeps (modules, the manifest, the state, the plan) and next
    to no garbage cycles, yet CPython's collector went over it all again and again: ~90
    collections, ~20 ms of an apply's start-up and ~6 ms of ``validate``'s (benchmarks/README.md,
    P2). What exists now is frozen (never scanned again: it lives until the process ends).
    Nothing to do when the collector is on (``main()`` called by tests or an embedder)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _planned_gradual(saved: dict[str, object], planfile: Path, gradual: int | None) -> int | None:
    """The --gradual a saved plan was made with; a different one given now is refused."""
    planned = saved.get("gradual")
    if gradual is not None and gradual != planned:
        made = f"with --gradual {planned}" if planned is not None else "without --gradual"
        raise DeployerError(f"plan {planfile} was made {made}: apply it without --gradual, or make the plan again "
                            f"with 'deployer plan --gradual {gradual} --out {planfile}'")
    return planned if isinstance(planned, int) else None


def _annotations(manifest: Manifest, gradual: int | None, message: str | None, tag: str | None) -> dict[str, str]:
    """The annotations of the versions a --gradual apply uploads (none without --gradual)."""
    from deployer.apply.annotations import version_annotations

    if gradual is None:
        if message is not None or tag is not None:
            warn("--message and --tag annotate the versions that --gradual uploads; without --gradual they are "
                 "not sent")
        return {}
    return version_annotations(manifest.path, message, tag)


def _print_gradual_started(the_plan: Plan, state: State) -> None:
    from deployer.plan.render import describe_split

    started = [(c.name, state.script(c.name)) for c in the_plan.changes if c.rollout and c.rollout.percentage]
    lines = [f"  script {name}: {describe_split(s.split)}" for name, s in started if s is not None and s.split]
    if lines:
        print("Gradual deployments started:", *lines, "End them with 'deployer promote' (all traffic to the new "
              "versions) or 'deployer rollback' (back to the previous ones).", sep="\n")


def _confirm() -> None:
    if not sys.stdin.isatty():
        raise ApprovalRefused(
            "apply needs approval and there is no terminal to ask on: review 'deployer plan' and pass "
            "--auto-approve, or apply a saved plan ('deployer plan --out PLANFILE', then 'deployer apply PLANFILE')"
        )
    sys.stderr.write("\nApply these changes? Only 'yes' is accepted: ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip()
    if answer != "yes":
        raise ApprovalRefused("apply cancelled: nothing was changed")


@app.command()
def refresh(
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Record what is deployed in the state (etags, and the bindings and code hash of scripts changed outside
    deployer), accepting changes made outside deployer; no upload."""
    from deployer.escape import escape_text
    from deployer.remote import read_remote, refresh_state, unmanaged_warning

    manifest = _load_manifest(file, env)
    client = _client()
    store = open_state(file, env, state, state_name, manifest.project)
    try:
        with store.lock(command="deployer refresh", timeout=lock_timeout, warn=warn):
            _check_target(manifest, store, store.state, _identity(file, manifest))  # before any request
            remote = read_remote(manifest, client, store.state)
            found = refresh_state(store.state, remote)
            for script, drift in found.updated:
                changed = "; ".join(_drift_words(d) for d in drift)
                stderr(escape_text(f"script {script.name}: recorded as deployed ({changed}; etag {script.etag}, "
                                   f"modified {script.modified_on})"))
                for name, binding_type in remote.scripts[script.name].unmanaged:
                    warn(f"script {script.name}: {unmanaged_warning(name, binding_type)}")
            for name in found.gone_scripts:
                warn(f"script {name} no longer exists in Cloudflare: dropped from the state (plan shows a create)")
            for kind, key in found.gone_resources:
                warn(f"{kind} {key} no longer exists in Cloudflare: dropped from the state (plan shows a create)")
            for kind, key in found.gone_attachments:
                warn(f"{kind} {key} is no longer attached in Cloudflare: dropped from the state")
            if found.updated or found.gone_scripts or found.gone_resources or found.attachments or found.gone_attachments:
                store.record(scripts=[script for script, _ in found.updated], removed_scripts=found.gone_scripts,
                             forgotten=found.gone_resources, attachments=found.attachments,
                             removed_attachments=found.gone_attachments)
                store.commit()
    finally:
        client.close()
    print(f"Refresh complete: {len(found.updated)} updated, {len(found.gone_scripts)} script(s) and "
          f"{_resources_gone(found.gone_resources)}, {found.unchanged} unchanged.")
    return ExitStatus.OK


def _drift_words(drift: Drift) -> str:
    """What ``deployer refresh`` says it found changed in a script (names are escaped by the caller)."""
    if drift.what == "binding":
        return f"binding {drift.name} {drift.change.value}"
    if drift.what == "content":
        return "code changed"
    return "code and bindings as recorded"


def _resources_gone(gone: tuple[tuple[str, str], ...]) -> str:
    from deployer.kinds.registry import RESOURCE_KINDS

    # The kinds every state has (KV) are always named, as before; others when some are gone.
    counts = {kind.type: 0 for kind in RESOURCE_KINDS.values() if kind.always_in_state}
    for kind_type, _ in gone:
        counts[kind_type] = counts.get(kind_type, 0) + 1
    return " and ".join(f"{n} {kind_type}(s)" for kind_type, n in counts.items()) + " gone"


@app.command("import")
def import_script(
    name: Optional[str] = typer.Argument(
        None, help="The script's name in Cloudflare, as the plan shows it (with any name_suffix)."),
    all_scripts: bool = typer.Option(
        False, "--all", help="Import every script of the manifest that exists in Cloudflare (one list request) "
        "and report those that do not."),
    trust_secrets: bool = typer.Option(
        False, "--trust-secrets", help="TRUST that the secrets deployed in Cloudflare hold exactly the values the "
        "manifest's secret_text bindings have now (Cloudflare never returns a secret, so this cannot be checked): "
        "record their fingerprints, so the next plan does not send them again. Without it, the next apply "
        "re-sends every imported secret."),
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    state: Optional[str] = StateOption,
    state_name: Optional[str] = StateNameOption,
    allow_overwrite: bool = typer.Option(
        False, "--allow-overwrite", help="Import a script even when another project's ownership tag is on it."
    ),
    lock_timeout: float = LockTimeoutOption,
    debug: bool = DebugOption,
) -> int:
    """Adopt scripts that already exist in Cloudflare into the state, so plan shows only real differences."""
    from deployer.apply.guard import CachedReads, refuse_other_owner
    from deployer.escape import escape_text
    from deployer.remote import adopt_attachments, deployed_scripts, import_script as read_deployed

    if (name is None) == (not all_scripts):
        raise DeployerError("import takes a script NAME or --all (every script of the manifest), not both")
    manifest = _load_manifest(file, env)
    if name is not None:
        script = next((s for s in manifest.scripts if s.name == name), None)
        if script is None:
            known = ", ".join(s.name for s in manifest.scripts) or "none"
            raise DeployerError(f"script {name!r} is not in the manifest {file} (its scripts: {known}); "
                                "add it to the manifest first, then import it")
    account_id = manifest.require_account("import")
    client = _client()
    store = open_state(file, env, state, state_name, manifest.project)
    identity = _identity(file, manifest)
    imported, absent, present, warnings = [], [], [], []
    try:
        with store.lock(command=f"deployer import {name or '--all'}", timeout=lock_timeout, warn=warn):
            _check_target(manifest, store, store.state, identity)
            if name is not None and store.state.script(name) is not None:
                raise DeployerError(f"script {name!r} is already in the state {store.description}; "
                                    "'deployer refresh' records its current etag")
            reads = CachedReads(client)  # the ownership check reuses the settings import reads
            listed = deployed_scripts(account_id, reads)
            for script in manifest.scripts:
                if name is not None and script.name != name:
                    continue
                if store.state.script(script.name) is not None:
                    present.append(script.name)
                    continue
                if name is None and script.name not in listed:
                    absent.append(script.name)
                    continue
                recorded, found = read_deployed(script, account_id, reads, listed=listed,
                                                trust_secrets=trust_secrets)
                if not allow_overwrite:
                    tags = reads.get_script_settings(account_id, script.name).get("tags")
                    refuse_other_owner(script.name, tags, manifest.project, "import")
                attached, missing = adopt_attachments(script, account_id, reads)
                found += missing
                warnings += [f"script {script.name}: {w}" for w in found] if name is None else found
                store.record(scripts=[recorded], account_id=manifest.account_id, zone_id=manifest.zone_id,
                             project=identity, attachments=attached)
                imported.append(recorded)
            if imported:
                store.commit()
    finally:
        client.close()
    for warning in warnings:
        warn(warning)
    for recorded in imported:
        trusted = f", {len(recorded.secret_fingerprints)} secret(s) trusted" if trust_secrets else ""
        print(escape_text(f"Imported script {recorded.name} ({len(recorded.bindings)} binding(s){trusted}, "
                          f"etag {recorded.etag})"))  # the etag is Cloudflare's text
    if name is None:
        print(f"Imported {len(imported)} script(s)"
              + (f"; not in Cloudflare (plan shows a create): {', '.join(absent)}" if absent else "")
              + (f"; already in the state: {', '.join(present)}" if present else "") + ".")
    print("'deployer plan' now shows only what differs from the manifest.")
    return ExitStatus.OK


@app.command()
def init(
    configs: Optional[list[Path]] = typer.Argument(
        None, metavar="[WRANGLER_CONFIG]...",
        help="With --from-wrangler: the wrangler configs to convert, one Worker each (default: wrangler.json, "
        "wrangler.jsonc or wrangler.toml in the current directory)."),
    from_wrangler: bool = typer.Option(
        False, "--from-wrangler", help="Convert wrangler configs into one workers.yaml; what cannot be carried "
        "over is listed on stderr with its line."),
    file: Path = FileOption,
    debug: bool = DebugOption,
) -> int:
    """Write a starter workers.yaml (with the $schema line), its schema, a script and a .gitignore entry,
    or (--from-wrangler) the workers.yaml equivalent to wrangler configs."""
    from deployer.cli.scaffold import init_project

    if from_wrangler:
        return _init_from_wrangler(configs or [], file)
    if configs:
        raise DeployerError("init takes config files only with --from-wrangler: deployer init --from-wrangler "
                            + " ".join(str(c) for c in configs))
    for line in init_project(file):
        stderr(line)
    stderr(f"next: export CLOUDFLARE_ACCOUNT_ID, then run 'deployer plan -f {file}'; 'deployer apply' also needs "
           "CLOUDFLARE_API_TOKEN (an API token with the \"Workers Scripts Write\" permission)")
    return ExitStatus.OK


@app.command()
def graph(
    file: Path = FileOption,
    env: Optional[str] = EnvOption,
    format: GraphFormat = typer.Option(
        GraphFormat.MERMAID, "--format",
        help="mermaid (one box per kind past 150 resources) or dot (for Graphviz, every resource).",
    ),
    debug: bool = DebugOption,
) -> int:
    """Print the manifest's resources and what binds what, as a Mermaid flowchart or DOT; no state, no network."""
    from deployer.plan.diagram import graph_of_manifest
    from deployer.plan.graph import render_dot, render_mermaid, summarise

    whole = graph_of_manifest(_load_manifest(file, env))
    match format:
        case GraphFormat.MERMAID:
            sys.stdout.write(render_mermaid(summarise(whole)))
        case GraphFormat.DOT:
            sys.stdout.write(render_dot(whole))
    return ExitStatus.OK


def _init_from_wrangler(configs: list[Path], file: Path) -> int:
    from deployer.cli.scaffold import convert_wrangler_files, find_wrangler_config, init_converted, refuse_existing

    refuse_existing(file)  # before reading anything: nothing is written over
    if not configs:
        found, others = find_wrangler_config(Path.cwd())
        if others:
            warn(f"converting {found.name} (wrangler's choice among {', '.join([found.name, *others])})")
        configs = [Path(found.name)]
    conversion = convert_wrangler_files(configs, file)
    for warning in conversion.warnings:
        warn(warning)
    for line in init_converted(file, conversion.text):
        stderr(line)
    stderr(f"next: set the secrets it names, then 'deployer validate -f {file}', 'deployer import --all "
           f"--trust-secrets -f {file}' and 'deployer plan --refresh -f {file}'")
    return ExitStatus.OK


@app.command()
def schema() -> int:
    """Print the manifest's JSON Schema (draft 2020-12)."""
    from deployer.manifest.validate import schema_text

    sys.stdout.write(schema_text())
    return ExitStatus.OK


register_version_commands(app)  # promote, rollback, versions: listed after the commands above

_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> NoReturn:
    """The one error boundary: an expected failure prints ``error: ...`` and exits 1."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DEPLOYER_DEBUG", "") not in ("", "0")
    restore = _terminate_like_interrupt()
    try:
        code = app(args=args, prog_name="deployer", standalone_mode=False)
        if code == _INTERRUPTED:  # typer turns a KeyboardInterrupt (Ctrl-C, SIGTERM) into exit 130
            stderr("error: interrupted")
            code = ExitStatus.ERROR
    except DeployerError as exc:
        if debug:
            _print_traceback(exc)
        else:
            _print_error(exc)
        code = ExitStatus.ERROR
    except typer.Abort:
        stderr("error: aborted")
        code = ExitStatus.ERROR
    except typer.TyperException as exc:  # usage errors: unknown option, bad value
        exc.show()  # type: ignore[attr-defined]
        code = ExitStatus.ERROR
    except KeyboardInterrupt:
        stderr("error: interrupted")
        code = ExitStatus.ERROR
    finally:
        restore()
    sys.exit(int(code or 0))


def _terminate_like_interrupt() -> Callable[[], None]:
    """Treat SIGTERM like Ctrl-C while a command runs (CI runners stop a cancelled job with
    SIGTERM): in-flight uploads finish and are recorded before exit. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _scrubbed_excepthook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    _print_traceback(exc)


def console() -> NoReturn:
    """The ``deployer`` program (console script and ``python -m deployer``): ``main()``, then
    leave without tearing the interpreter down.

    Finalizing the interpreter (clearing every module, running the collector) takes ~15 ms on
    the benchmark machine, more than the rest of ``deployer validate`` adds to importing its
    libraries (benchmarks/README.md, P3). By the time ``main()`` returns, everything deployer
    opened is closed: state writes are fsync'd inside ``with`` blocks, the executor's pool was
    shut down and joined, the lock released. Only stdout and stderr still hold buffered text;
    they are flushed here, and if that fails (a closed pipe) the ordinary exit reports it.
    Tests and embedders call ``main()``, which exits the ordinary way.

    The cyclic garbage collector is off until an apply starts sending (``_collect_from_now``):
    before, a run only builds what it keeps, and reference counting frees the rest.
    """
    sys.excepthook = _scrubbed_excepthook  # a bug's traceback is scrubbed too
    gc.disable()
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    # An exception other than SystemExit is a bug: it propagates with its traceback.
    if not isinstance(code, int):
        sys.exit(code)  # a message or None: let SystemExit print/handle it as usual
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)


def _print_traceback(exc: BaseException) -> None:
    """What --debug shows: the whole traceback, causes included (a driver's error may quote a
    URL with its password, a server's answer a secret), scrubbed like every other message."""
    import traceback

    from deployer.redact import scrub

    sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
    sys.stderr.flush()


def _print_error(exc: DeployerError) -> None:
    if isinstance(exc, ManifestError):
        lines = [str(d) for d in exc.diagnostics]
        stderr(f"error: {len(lines)} problem{'s' if len(lines) != 1 else ''} in the manifest:")
        for line in lines:
            stderr(f"  {line}")
        return
    for i, line in enumerate(str(exc).splitlines()):
        stderr(("error: " if i == 0 else "  ") + line)
