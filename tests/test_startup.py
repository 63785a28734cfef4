"""What a command imports and how the program exits: start-up cost is behaviour (issue 4, P3).
Nothing here times anything; ``python -m benchmarks`` does that."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample-project" / "workers.yaml"

# Runs one command in a fresh interpreter through main(), then reports what got imported.
_PROBE = """
import json, sys
from deployer.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _imported_by(*args: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["code"] == 0, done.stderr
    return set(report["modules"])


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["plan", "--format", "json"], ["schema"]])
def test_commands_without_requests_import_no_http_client(command: list[str]) -> None:
    modules = _imported_by(*command, *(["-f", str(SAMPLE)] if command[0] != "schema" else []))
    assert not {"requests", "urllib3", "deployer.cloudflare.transport"} & modules


def test_no_command_imports_pydantic() -> None:
    # typer 0.29 coerces every option through pydantic (~70 ms per run); pyproject caps it.
    assert "pydantic" not in _imported_by("validate", "-f", str(SAMPLE))


@pytest.mark.parametrize("args, code", [(["validate", "-f", str(SAMPLE)], 0), (["validate", "-f", "missing.yaml"], 1)])
def test_console_exits_with_mains_code_and_flushed_output(args: list[str], code: int) -> None:
    # console() skips interpreter teardown: whatever was printed must still arrive, piped.
    done = subprocess.run([sys.executable, "-m", "deployer", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert done.returncode == code
    expected = "valid (4 scripts" if code == 0 else "error: manifest not found"
    assert expected in done.stderr


def test_console_flushes_a_large_stdout_through_a_pipe() -> None:
    done = subprocess.run([sys.executable, "-m", "deployer", "schema"], capture_output=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 0
    assert done.stdout == (REPO / "deployer" / "schemas" / "workers.schema.json").read_bytes()
