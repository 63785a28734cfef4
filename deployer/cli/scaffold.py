"""``deployer init``: a starter project beside the manifest path: ``workers.yaml`` (with the
editor's ``$schema`` line), the schema it points at, a first script, and the ``.gitignore``
line for the state lock; or, with ``--from-wrangler``, the manifest converted from wrangler
configs. Never overwrites a manifest that exists."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from deployer.errors import DeployerError
from deployer.manifest.validate import schema_text

if TYPE_CHECKING:
    from deployer.manifest.wrangler import Conversion

SCHEMA_FILE = "workers.schema.json"
LOCK_PATTERN = ".deployer/*.lock"

STARTER_MANIFEST = f"""\
# yaml-language-server: $schema={SCHEMA_FILE}
version: 1
account_id: ${{CLOUDFLARE_ACCOUNT_ID}}

scripts:
  my-worker:
    path: src/worker.js
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
addEventListener('fetch', event => {
  event.respondWith(new Response(`Hello from ${ENVIRONMENT}\\n`))
})
"""


def init_project(manifest: Path) -> list[str]:
    """Write the starter files; returns one line per file written or left alone.

    Raises DeployerError when ``manifest`` exists already (nothing is written then).
    """
    refuse_existing(manifest)
    directory = manifest.parent
    done = [_create(manifest, STARTER_MANIFEST), _schema(directory / SCHEMA_FILE)]
    script = directory / "src" / "worker.js"
    done.append(f"left {script} as it is" if script.exists() else _create(script, STARTER_SCRIPT))
    done.append(_ignore_lock(directory / ".gitignore"))
    return done


def refuse_existing(manifest: Path) -> None:
    """Raise DeployerError when ``manifest`` exists: init never overwrites one."""
    if manifest.exists():
        raise DeployerError(f"{manifest} already exists; init never overwrites it "
                            "(pass -f/--file to create a manifest elsewhere)")


def init_converted(manifest: Path, text: str) -> list[str]:
    """Write a converted manifest ``text`` and, beside it, the schema and the ``.gitignore``
    line; one line per file. Raises DeployerError when ``manifest`` exists."""
    refuse_existing(manifest)
    directory = manifest.parent
    return [_create(manifest, text), _schema(directory / SCHEMA_FILE), _ignore_lock(directory / ".gitignore")]


# wrangler's own order when a directory holds more than one
WRANGLER_CONFIGS = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")


def find_wrangler_config(directory: Path) -> tuple[Path, list[str]]:
    """The config wrangler would read in ``directory``, and the names of the others there.
    Raises DeployerError when there is none."""
    found = [directory / name for name in WRANGLER_CONFIGS if (directory / name).is_file()]
    if not found:
        raise DeployerError(f"no {', '.join(WRANGLER_CONFIGS)} in {directory}: pass the wrangler config(s) to "
                            "convert, e.g. deployer init --from-wrangler workers/api/wrangler.toml")
    return found[0], [path.name for path in found[1:]]


def convert_wrangler_files(configs: Sequence[Path], manifest: Path) -> Conversion:
    """Read ``configs`` and convert them for a manifest at ``manifest``: paths in it are made
    relative to its directory, and the entry files are read from there to tell their format."""
    from deployer.manifest.wrangler import WranglerConfig, convert_wrangler

    base = manifest.parent.resolve()
    read = []
    for config in configs:
        try:
            text = config.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeployerError(f"cannot read wrangler config {config}: {getattr(exc, 'strerror', None) or exc}") from exc
        directory = Path(os.path.relpath(config.resolve().parent, base)).as_posix()
        read.append(WranglerConfig(str(config), text, "" if directory == "." else directory))

    def read_source(path: str) -> str | None:
        try:
            return (base / path).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            return None

    return convert_wrangler(read, read_source)


def _schema(schema: Path) -> str:
    if schema.exists() and schema.read_text(encoding="utf-8") != schema_text():
        return f"left {schema} as it is (refresh it with: deployer schema > {schema})"
    return _create(schema, schema_text(), replace=True)


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
