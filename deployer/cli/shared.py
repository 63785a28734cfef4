"""What every command module of the CLI shares: exit codes, the options that locate a manifest
and its state, and the stderr helpers. (``cli`` is the app and the error boundary; ``cli_state``
the ``deployer state`` commands.)"""
from __future__ import annotations

import enum
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from deployer.state.backend import StateBackend


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1
    CHANGES = 2  # plan --detailed-exitcode found changes
    DRIFT = 3  # plan --refresh --detailed-exitcode found Cloudflare different from the state


# Options shared by every command that reads a manifest or a state.
FileOption = typer.Option(Path("workers.yaml"), "-f", "--file", help="The manifest (default: ./workers.yaml).")
EnvOption = typer.Option(None, "--env", help="Environment name: selects .deployer/state.<env>.json.")
StateOption = typer.Option(
    None, "--state", help="State file, or a postgresql:// URL (default: $DEPLOYER_STATE_URL, else "
    ".deployer/state.json beside the manifest).")
StateNameOption = typer.Option(
    None, "--state-name", help="The state's name in PostgreSQL (default: the project: key, else the git repository "
    "and the manifest's path in it; .ENV added with --env).")
DebugOption = typer.Option(False, "--debug", help="Show tracebacks for expected errors too.")
LockTimeoutOption = typer.Option(0.0, "--lock-timeout", min=0.0, help="Seconds to wait for another apply's lock.")


_OUTPUT = threading.Lock()


def stderr(message: str) -> None:
    """One line on stderr, written whole: parallel uploads never run into each other's lines."""
    with _OUTPUT:
        stream = sys.stderr  # whatever it is now (tests swap it)
        stream.write(message + "\n")
        stream.flush()


def warn(message: str) -> None:
    """One warning line; a value in it (a name, a title, a path) cannot break the line or
    colour the terminal: control characters are escaped."""
    from deployer.escape import escape_text

    stderr(f"warning: {escape_text(message)}")


def open_state(
    file: Path, env: str | None, state: str | None, state_name: str | None, project: str | None = None, *,
    peek: bool = False,
) -> StateBackend:
    """The state for a manifest. ``project`` is its ``project:`` key; with ``peek``, the key is
    read from the manifest only if the default PostgreSQL state name needs it (commands that do
    not load the manifest)."""
    from deployer.state.backend import open_store

    if peek:
        from deployer.manifest.load import manifest_project

        return open_store(file, env, state, state_name, os.environ, lambda: manifest_project(file, os.environ))
    return open_store(file, env, state, state_name, os.environ, project)
