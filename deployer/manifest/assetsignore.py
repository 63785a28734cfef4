"""``.assetsignore``: the files of an assets directory not to upload, in ``.gitignore``'s
syntax (as wrangler reads it, from the directory's root only).

The subset implemented, as gitignore defines it: blank lines and ``#`` comments are skipped
(``\\#`` is a literal ``#``); trailing spaces are dropped unless escaped; ``!`` re-includes
what an earlier line excluded (``\\!`` is a literal ``!``); a trailing ``/`` matches
directories only; a pattern with a ``/`` before its end is anchored at the directory's root,
one without matches at any depth; ``*`` and ``?`` never match ``/``; ``[abc]``, ``[a-z]``,
``[!a]``; ``**/`` (any directories), ``/**`` (everything inside), ``/**/`` (zero or more
directories); ``\\`` escapes the next character. The last matching line wins, and a file under
an excluded directory cannot be re-included (git's rule: the directory is never read).
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    negated: bool
    directories_only: bool


class IgnoreRules:
    """The rules of one ``.assetsignore``; paths are relative to its directory, ``/``-separated."""

    def __init__(self, text: str = "") -> None:
        self._rules = tuple(rule for line in text.splitlines() if (rule := _parse(line)) is not None)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def ignored(self, path: str, is_dir: bool) -> bool:
        """Whether ``path`` itself is excluded (its parent directories are the caller's: a walk
        never enters an excluded one)."""
        verdict = False
        for rule in self._rules:
            if rule.directories_only and not is_dir:
                continue
            if rule.pattern.match(path):
                verdict = not rule.negated
        return verdict


def _parse(line: str) -> _Rule | None:
    line = line.rstrip("\r")
    if not line or line.startswith("#"):
        return None
    line = _strip_trailing_spaces(line)
    negated = line.startswith("!")
    if negated:
        line = line[1:]
    elif line.startswith(("\\!", "\\#")):
        line = line[1:]
    directories_only = line.endswith("/") and not line.endswith("\\/")
    if directories_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    body = _translate(line.lstrip("/") if anchored else line)
    prefix = "" if anchored else "(?:.*/)?"
    return _Rule(re.compile(f"^{prefix}{body}$", re.DOTALL), negated, directories_only)


def _strip_trailing_spaces(line: str) -> str:
    end = len(line)
    while end > 0 and line[end - 1] == " ":
        backslashes = len(line[:end - 1]) - len(line[:end - 1].rstrip("\\"))
        if backslashes % 2:  # "\ " keeps its space
            break
        end -= 1
    return line[:end]


def _translate(pattern: str) -> str:
    """A gitignore glob as a regular expression over ``/``-separated paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            alone = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            if j - i == 2 and alone:
                if j == n:
                    out.append(".*")  # "dir/**": everything inside; "**": everything
                else:
                    out.append("(?:.*/)?")  # "**/": zero or more directories
                    j += 1
            else:
                out.append("[^/]*")  # other runs of asterisks are one ordinary "*"
            i = j
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(pattern, i)
            if end is None:
                out.append(re.escape(char))
            else:
                out.append(_class(pattern[i + 1:end]))
                i = end
        elif char == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int | None:
    """The index of the ``]`` closing the class opened at ``start`` (None: not a class)."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "!^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a leading "]" is a member
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "]":
            return i
        i += 1
    return None


def _class(body: str) -> str:
    negated = body[:1] in ("!", "^")
    if negated:
        body = body[1:]
    members: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            i += 1
            char = body[i]
        if char == "-" and members and i + 1 < len(body):
            members.append("-")  # a range between the members around it
        else:
            members.append(re.escape(char))
        i += 1
    # A class never matches "/" (gitignore matches with FNM_PATHNAME).
    return "(?!/)[" + ("^" if negated else "") + "".join(members) + "]"
