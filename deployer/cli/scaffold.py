"""``deployer init``: a starter project beside the manifest path: ``workers.yaml`` (with the
editor's ``$schema`` line), the schema it points at, a first script, and the ``.gitignore``
line for the state lock. Never overwrites a file that exists."""
from __future__ import annotations

import os
from pathlib import Path

from deployer.errors import DeployerError
from deployer.files import create_new, open_regular, read_regular, refuse_odd_file
from deployer.manifest.validate import schema_text

SCHEMA_FILE = "workers.schema.json"
LOCK_PATTERN = ".deployer/*.lock"

STARTER_MANIFEST = f"""\
# yaml-language-server: $schema={SCHEMA_FILE}
version: 1
account_id: ${{CLOUDFLARE_ACCOUNT_ID}}

scripts:
  my-worker:
    format: modules                  # an ES module (export default {{ fetch }}), as wrangler writes it
    path: src/index.js
    compatibility_date: "2024-09-23"
    bindings:
      - type: plain_text
        name: ENVIRONMENT
        text: production

# deployer plan --env staging deploys my-worker-staging with its own state file:
# environments:
#   staging:
#     name_suffix: -staging
#     scripts:
#       my-worker:
#         bindings:
#           - type: plain_text
#             name: ENVIRONMENT
#             text: staging
"""

STARTER_SCRIPT = """\
export default {
  async fetch(request, env, ctx) {
    return new Response(`Hello from ${env.ENVIRONMENT}\\n`);
  },
};
"""


def init_project(manifest: Path) -> list[str]:
    """Write the starter files; returns one line per file written or left alone.

    Raises DeployerError when ``manifest`` exists already, or when a symlink, directory, FIFO
    or device is where one of the files would go (nothing is written then).
    """
    directory = manifest.parent
    schema = directory / SCHEMA_FILE
    script = directory / "src" / "index.js"
    gitignore = directory / ".gitignore"
    if manifest.exists() or manifest.is_symlink():
        raise DeployerError(f"{manifest} already exists; init never overwrites it "
                            "(pass -f/--file to create a manifest elsewhere)")
    for path in (schema, script, gitignore):
        refuse_odd_file(path, str(path))
    done = [_create(manifest, STARTER_MANIFEST)]
    current = read_regular(schema, str(schema), max_bytes=_MAX_READ_BYTES)
    if current is None:
        done.append(_create(schema, schema_text()))
    elif current == schema_text().encode("utf-8"):
        done.append(f"{schema} is up to date")
    else:
        done.append(f"left {schema} as it is (refresh it with: deployer schema > {schema})")
    done.append(f"left {script} as it is" if script.exists() else _create(script, STARTER_SCRIPT))
    done.append(_ignore_lock(gitignore))
    return done


_MAX_READ_BYTES = 16 * 1024 * 1024


def _create(path: Path, text: str) -> str:
    if not create_new(path, text.encode("utf-8"), str(path)):
        raise DeployerError(f"{path} appeared while init ran; init never overwrites a file")
    return f"wrote {path}"


def _ignore_lock(gitignore: Path) -> str:
    """Add the lock pattern unless a line holds it already. The file is compared as bytes, so
    a .gitignore in another encoding (or with odd bytes) is appended to, never misread."""
    shown = str(gitignore)
    existing = read_regular(gitignore, shown, max_bytes=_MAX_READ_BYTES) or b""
    pattern = LOCK_PATTERN.encode("ascii")
    if pattern in (line.strip() for line in existing.splitlines()):
        return f"{gitignore} already ignores {LOCK_PATTERN}"
    fd = open_regular(gitignore, os.O_WRONLY | os.O_APPEND | os.O_CREAT, shown, mode=0o644, fix_mode=False)
    assert fd is not None  # O_CREAT: a missing file was created
    try:
        with os.fdopen(fd, "ab") as handle:
            handle.write((b"" if not existing or existing.endswith(b"\n") else b"\n") + pattern + b"\n")
    except OSError as exc:
        raise DeployerError(f"cannot update {gitignore}: {exc.strerror or exc}") from exc
    return f"added {LOCK_PATTERN} to {gitignore}"
