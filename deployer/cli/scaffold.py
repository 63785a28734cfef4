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
from deployer.files import create_new, open_regular, read_regular, refuse_odd_file
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
    refuse_existing(manifest)
    for path in (schema, script, gitignore):
        refuse_odd_file(path, str(path))
    done = [_create(manifest, STARTER_MANIFEST), _schema(schema)]
    done.append(f"left {script} as it is" if script.exists() else _create(script, STARTER_SCRIPT))
    done.append(_ignore_lock(gitignore))
    return done


def refuse_existing(manifest: Path) -> None:
    """Raise DeployerError when ``manifest`` exists: init never overwrites one."""
    if manifest.exists() or manifest.is_symlink():
        raise DeployerError(f"{manifest} already exists; init never overwrites it "
                            "(pass -f/--file to create a manifest elsewhere)")


def init_converted(manifest: Path, text: str) -> list[str]:
    """Write a converted manifest ``text`` and, beside it, the schema and the ``.gitignore``
    line; one line per file. Raises DeployerError when ``manifest`` exists."""
    refuse_existing(manifest)
    directory = manifest.parent
    for path in (directory / SCHEMA_FILE, directory / ".gitignore"):
        refuse_odd_file(path, str(path))
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
    current = read_regular(schema, str(schema), max_bytes=_MAX_READ_BYTES)
    if current is None:
        return _create(schema, schema_text())
    if current == schema_text().encode("utf-8"):
        return f"{schema} is up to date"
    return f"left {schema} as it is (refresh it with: deployer schema > {schema})"


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
