"""``deployer init``: a starter project beside the manifest path: ``workers.yaml`` (with the
editor's ``$schema`` line), the schema it points at, a first script, and the ``.gitignore``
line for the state lock. Never overwrites a file that exists."""
from __future__ import annotations

from pathlib import Path

from deployer.errors import DeployerError
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

    Raises DeployerError when ``manifest`` exists already (nothing is written then).
    """
    if manifest.exists():
        raise DeployerError(f"{manifest} already exists; init never overwrites it "
                            "(pass -f/--file to create a manifest elsewhere)")
    directory = manifest.parent
    done = [_create(manifest, STARTER_MANIFEST)]
    schema = directory / SCHEMA_FILE
    if schema.exists() and schema.read_text(encoding="utf-8") != schema_text():
        done.append(f"left {schema} as it is (refresh it with: deployer schema > {schema})")
    else:
        done.append(_create(schema, schema_text(), replace=True))
    script = directory / "src" / "index.js"
    done.append(f"left {script} as it is" if script.exists() else _create(script, STARTER_SCRIPT))
    done.append(_ignore_lock(directory / ".gitignore"))
    return done


def _create(path: Path, text: str, *, replace: bool = False) -> str:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w" if replace else "x", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise DeployerError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return f"wrote {path}"


def _ignore_lock(gitignore: Path) -> str:
    try:
        existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
        if LOCK_PATTERN in (line.strip() for line in existing.splitlines()):
            return f"{gitignore} already ignores {LOCK_PATTERN}"
        with gitignore.open("a", encoding="utf-8") as handle:
            handle.write(("" if not existing or existing.endswith("\n") else "\n") + LOCK_PATTERN + "\n")
    except OSError as exc:
        raise DeployerError(f"cannot update {gitignore}: {exc.strerror or exc}") from exc
    return f"added {LOCK_PATTERN} to {gitignore}"
