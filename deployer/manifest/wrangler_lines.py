"""Reading a wrangler config: its values (``tomllib`` for TOML, ``json5`` for JSON with comments
and trailing commas) and where each key was written, by path (``("env", "staging",
"kv_namespaces", 0)`` -> line).

Neither parser reports positions, so the text is read once more by small scanners to say which
line a warning is about. They run only on text the real parser accepted, and a surprise ends
the scan with what was found so far.
"""
from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import json5

from deployer.errors import DeployerError

Path = tuple[str | int, ...]


def read_config(file: str, text: str) -> tuple[dict[str, Any], dict[Path, int]]:
    """The config's values and the line of each key; ``file``'s suffix picks TOML or JSON(C).
    Raises DeployerError, naming ``file``, when the text is not valid or not a table."""
    if file.endswith(".toml"):
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DeployerError(f"{file}: not valid TOML: {exc}") from exc
        lines = toml_lines(text)
    else:
        try:
            data = json5.loads(text)
        except ValueError as exc:
            raise DeployerError(f"{file}: not valid JSON (comments and trailing commas are allowed): "
                                f"{str(exc).removeprefix('<string>:')}") from exc
        lines = json_lines(text)
    if not isinstance(data, dict):
        raise DeployerError(f"{file}: a wrangler config must be a table (a JSON object)")
    return data, lines


def line_of(lines: Mapping[Path, int], path: Path) -> int:
    """The line of ``path``, else of the first thing written under it, else of its parent (0:
    none)."""
    while path:
        if path in lines:
            return lines[path]
        below = [line for key, line in lines.items() if key[: len(path)] == path]
        if below:
            return min(below)
        path = path[:-1]
    return 0


class _Stop(Exception):
    """The scanner met something it does not follow; keep the lines found so far."""


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Path, int] = {}

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.pos >= len(self.text):
                raise _Stop
            if self.text[self.pos] == "\n":
                self.line += 1
            self.pos += 1

    def record(self, path: Path, line: int | None = None) -> None:
        self.lines.setdefault(path, self.line if line is None else line)

    def skip_to_line_end(self) -> None:
        while self.peek() not in ("", "\n"):
            self.pos += 1

    def gap(self) -> None:
        """Skip what may stand between the items of an array or an inline table (each format says)."""
        raise NotImplementedError

    def value(self, path: Path) -> None:
        raise NotImplementedError

    def array(self, path: Path) -> None:
        """The array starting here (at its "["): each element recorded at its line."""
        self.advance()
        index = 0
        while True:
            self.gap()
            if self.peek() == "]":
                self.advance()
                return
            self.record((*path, index))
            self.value((*path, index))
            self.gap()
            if self.peek() == ",":
                self.advance()
            index += 1

    def members(self, path: Path, separator: str, key: Callable[[], Sequence[str]]) -> None:
        """The inline table or object starting here (at its "{"): each key, read by ``key``
        (TOML's may be dotted), recorded at its line."""
        self.advance()
        while True:
            self.gap()
            if self.peek() == "}":
                self.advance()
                return
            line = self.line
            keys = tuple(key())
            self.gap()
            if self.peek() != separator:
                raise _Stop
            self.advance()
            self.record((*path, *keys), line)
            self.value((*path, *keys))
            self.gap()
            if self.peek() == ",":
                self.advance()


# --- TOML -------------------------------------------------------------------------------------


def toml_lines(text: str) -> dict[Path, int]:
    """The line of every key, table header and array element of a TOML document."""
    scanner = _Toml(text)
    try:
        scanner.document()
    except _Stop:
        pass
    return scanner.lines


class _Toml(_Scanner):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.table: Path = ()
        self.arrays: dict[Path, int] = {}  # array-of-tables path -> index of its last element

    def document(self) -> None:
        while self.pos < len(self.text):
            self.blank()
            char = self.peek()
            if char in ("\n", "#"):
                self.skip_to_line_end()
                if self.peek():
                    self.advance()
            elif char == "[":
                self.header()
            elif char:
                line = self.line
                keys = self.key()
                self.blank()
                if self.peek() != "=":
                    raise _Stop
                self.advance()
                path = (*self.table, *keys)
                self.record(path, line)
                self.value(path)

    def blank(self) -> None:
        while self.peek() in (" ", "\t", "\r"):
            self.pos += 1

    def gap(self) -> None:
        """Spaces, newlines and comments (inside an array or a multi-line inline table)."""
        while True:
            self.blank()
            if self.peek() == "#":
                self.skip_to_line_end()
            elif self.peek() == "\n":
                self.advance()
            else:
                return

    def header(self) -> None:
        line = self.line
        many = self.text.startswith("[[", self.pos)
        self.advance(2 if many else 1)
        keys = self.key()
        self.blank()
        self.advance(2 if many else 1)
        path: Path = ()
        for key in keys[:-1]:  # [a.b] under [[a]] belongs to a's last element
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path])
        path = (*path, keys[-1])
        self.record(path, line)
        if many:
            index = self.arrays.get(path, -1) + 1
            self.arrays[path] = index
            path = (*path, index)
            self.record(path, line)
        self.table = path

    def key(self) -> list[str]:
        keys = []
        while True:
            self.blank()
            char = self.peek()
            if char in ('"', "'"):
                keys.append(self.string())
            else:
                start = self.pos
                while self.peek() and (self.peek().isalnum() or self.peek() in "_-"):
                    self.pos += 1
                if self.pos == start:
                    raise _Stop
                keys.append(self.text[start:self.pos])
            self.blank()
            if self.peek() != ".":
                return keys
            self.advance()

    def string(self) -> str:
        quote = self.peek()
        if self.text.startswith(quote * 3, self.pos):
            self.advance(3)
            while not self.text.startswith(quote * 3, self.pos):
                self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
            while self.peek(3) == quote:  # up to two quotes may end the content
                self.advance()
            self.advance(3)
            return ""
        start = self.pos
        self.advance()
        while self.peek() != quote:
            if self.peek() in ("", "\n"):
                raise _Stop
            self.advance(2 if quote == '"' and self.peek() == "\\" else 1)
        self.advance()
        raw = self.text[start:self.pos]
        if quote == "'":
            return raw[1:-1]
        try:
            decoded = json.loads(raw)  # TOML's basic-string escapes are JSON's, plus \U and \e
        except ValueError:
            return raw[1:-1]
        return decoded if isinstance(decoded, str) else raw[1:-1]

    def value(self, path: Path) -> None:
        self.blank()
        char = self.peek()
        if char in ('"', "'"):
            self.string()
        elif char == "[":
            self.array(path)
        elif char == "{":
            self.members(path, "=", self.key)
        else:
            while self.peek() not in ("", ",", "]", "}", "\n", "#"):
                self.pos += 1


# --- JSON and JSONC ---------------------------------------------------------------------------


def json_lines(text: str) -> dict[Path, int]:
    """The line of every member and array element of a JSON document with comments and
    trailing commas (JSONC, as wrangler.jsonc allows)."""
    scanner = _Json(text)
    try:
        scanner.value(())
    except _Stop:
        pass
    return scanner.lines


class _Json(_Scanner):
    def gap(self) -> None:
        while True:
            char = self.peek()
            if char and char in " \t\r\n\ufeff":
                self.advance()
            elif self.text.startswith("//", self.pos):
                self.skip_to_line_end()
            elif self.text.startswith("/*", self.pos):
                end = self.text.find("*/", self.pos + 2)
                if end < 0:
                    raise _Stop
                self.advance(end + 2 - self.pos)
            else:
                return

    def value(self, path: Path) -> None:
        self.gap()
        char = self.peek()
        if char == "{":
            self.members(path, ":", lambda: (self.string() if self.peek() in ('"', "'") else self.word(),))
        elif char == "[":
            self.array(path)
        elif char in ('"', "'"):
            self.string()
        elif char:
            self.word()
        else:
            raise _Stop

    def word(self) -> str:
        start = self.pos
        while self.peek() and self.peek() not in ",:]}/ \t\r\n":
            self.pos += 1
        if self.pos == start:
            raise _Stop
        return self.text[start:self.pos]

    def string(self) -> str:
        quote = self.peek()
        start = self.pos
        self.advance()
        while self.peek() != quote:
            self.advance(2 if self.peek() == "\\" else 1)
        self.advance()
        raw = self.text[start:self.pos]
        if quote == "'":
            return raw[1:-1]
        try:
            decoded = json.loads(raw)
        except ValueError:
            return raw[1:-1]
        return decoded if isinstance(decoded, str) else raw[1:-1]
