"""Which project a manifest belongs to: its ``project:`` key, else its git repository (the
``origin`` remote without credentials, or the repository directory's name when there is no
remote) and the manifest's path inside it. Never an absolute path: CI runners clone into a new
directory every time and must keep finding the same state. A state records the identity of
the project that wrote it, and the default PostgreSQL state name is built from it."""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

# ``git@github.com:acme/shop.git``: scp-like syntax, what ``git clone`` accepts for ssh.
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!//).+)$")
_SECTION = re.compile(r'^\[\s*(?P<name>[A-Za-z0-9.-]+)(?:\s+"(?P<sub>(?:[^"\\]|\\.)*)")?\s*\]')


def project_identity(manifest_path: Path, project: str | None) -> str:
    """``project`` when the manifest sets one; else ``<repository>:<manifest path in it>``
    (``github.com/acme/shop:deploy/workers.yaml``), or ``<directory>/<file>`` of the manifest
    outside any git repository."""
    if project:
        return project
    manifest = manifest_path.absolute()
    found = _repository(manifest.parent)
    if found is None:
        return f"{manifest.parent.name}/{manifest.name}" if manifest.parent.name else manifest.name
    root, git_dir = found
    try:
        inside = manifest.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a symlink out of the repository: name the file as written
        inside = manifest.relative_to(root).as_posix() if manifest.is_relative_to(root) else manifest.name
    return f"{_remote_identity(git_dir) or root.name}:{inside}"


def _repository(directory: Path) -> tuple[Path, Path] | None:
    """(work tree root, git directory holding ``config``) of the repository around
    ``directory``, following a ``.git`` file (worktrees, submodules) to its common directory."""
    found = _work_tree(directory)
    return None if found is None else (found[0], found[2])


def git_directories(directory: Path) -> tuple[Path, Path] | None:
    """(the git directory holding this work tree's ``HEAD``, the common one holding objects,
    refs and config) of the repository around ``directory``; the same directory twice except in
    a linked worktree. None outside any repository."""
    found = _work_tree(directory)
    return None if found is None else (found[1], found[2])


def _work_tree(directory: Path) -> tuple[Path, Path, Path] | None:
    """(root, its git directory, the common git directory) of the nearest work tree holding
    ``directory``: a ``.git`` directory, or a ``.git`` file naming one (worktrees, submodules)."""
    for candidate in (directory, *directory.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return candidate, dot_git, dot_git
        if dot_git.is_file():
            git_dir = _gitdir_from_file(dot_git)
            if git_dir is not None:
                return candidate, git_dir, _common_dir(git_dir)
    return None


def _gitdir_from_file(dot_git: Path) -> Path | None:
    try:
        text = dot_git.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gitdir:"):
            target = Path(line[len("gitdir:"):].strip())
            return target if target.is_absolute() else dot_git.parent / target
    return None


def _common_dir(git_dir: Path) -> Path:
    # A linked worktree keeps its own HEAD but shares config (and remotes) with the main one.
    try:
        common = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    path = Path(common)
    return path if path.is_absolute() else git_dir / path


def _remote_identity(git_dir: Path) -> str | None:
    url = _origin_url(git_dir / "config")
    return normalize_remote(url) if url else None


def _origin_url(config: Path) -> str | None:
    """``remote.origin.url`` from a git config file (the first one; includes are not followed)."""
    try:
        lines = config.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    in_origin = False
    for raw in lines:
        line = raw.strip()
        section = _SECTION.match(line)
        if section:
            name, sub = section.group("name").lower(), section.group("sub")
            in_origin = (name, sub) == ("remote", "origin") or name == "remote.origin"
            line = line[section.end():].strip()
        if not in_origin or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key.strip().lower() == "url":
            return _config_value(value)
    return None


def _config_value(value: str) -> str:
    """A git config value: quotes removed, a comment (``#``/``;`` outside quotes) dropped."""
    out, quoted = [], False
    for char in value.strip():
        if char == '"':
            quoted = not quoted
        elif char in "#;" and not quoted:
            break
        else:
            out.append(char)
    return "".join(out).strip()


def normalize_remote(url: str) -> str:
    """A remote URL as ``host/path`` without scheme, user, password, port or ``.git``, so an
    https clone in CI and an ssh clone on a laptop name the same repository. A local path
    remote is named by its last component (never an absolute path)."""
    url = url.strip()
    scp = _SCP_LIKE.match(url) if "://" not in url else None
    if scp is not None and not url.startswith(("/", ".")):
        host, path = scp.group("host"), scp.group("path")
    elif "://" in url:
        parts = urlsplit(url)
        host, path = (parts.hostname or "") if parts.scheme != "file" else "", parts.path
    else:
        host, path = "", url
    path = path.strip("/").removesuffix(".git")
    if not host:
        return PurePosixPath(path).name or "repository"
    return f"{host.lower()}/{path}" if path else host.lower()
