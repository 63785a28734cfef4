"""What a script's JavaScript source shows without running it: whether it has a default export
(an ES module Worker's handler) and which modules it imports.

A small lexer, not a parser: comments, strings, template literals and regular expression
literals are read as whole tokens, so ``export default`` inside any of them is not mistaken for
code. Good enough for warnings and hints, never for a decision that fails a command.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator

# Tokens, tried in order at each position. A template literal is one token; the code inside its
# ${...} is not looked into (an export cannot be there). Compiled on first use (its character
# ranges take ~7 ms to compile, and most commands never lex).
_TOKEN_PATTERN = (
    r"""(?P<space>\s+)
    |(?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
    |(?P<template>`(?:[^`\\]|\\.)*`?)
    |(?P<word>[A-Za-z_$\u0080-\uffff][\w$\u0080-\uffff]*)
    |(?P<number>\.?[0-9][\w.]*)
    |(?P<punct>=>|\.\.\.|[{}()\[\];,<>+\-*%&|^!~?:=.@#])
    |(?P<slash>/)
    |(?P<other>.)"""
)
_REGEX_BODY = re.compile(r"(?:[^/\\\[\n]|\\.|\[(?:[^\]\\\n]|\\.)*\])+/[A-Za-z]*")

# After these a '/' starts a regular expression literal; after anything else it divides.
_BEFORE_EXPRESSION = frozenset("( , = : [ ! & | ? { } ; + - * % < > ~ ^ =>".split())
_KEYWORDS_BEFORE_EXPRESSION = frozenset({"return", "typeof", "instanceof", "in", "of", "new", "delete",
                                         "void", "throw", "case", "do", "else", "yield", "await"})

# Below this size a candidate found by a quick search is confirmed by the lexer; a bundle larger
# than that is trusted to the quick search (the lexer reads about 3 MB/s, and plan runs it).
_LEX_LIMIT = 256 * 1024
# The literal comes first so that re can skip ahead to each "export" (a leading \b made it try
# every position: 0.7 s for 1,000 scripts of 50 KB); the lookbehind is that \b.
_QUICK_DEFAULT = re.compile(r"export(?<!\wexport)\s*(?:default\b|\{[^}]*\bdefault\b)")


@functools.cache
def _token() -> re.Pattern[str]:
    return re.compile(_TOKEN_PATTERN, re.VERBOSE | re.DOTALL)


def _tokens(source: str) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` of every significant token: word, string, template, regex, punct, other."""
    token = _token()
    position, previous = 0, ""
    while position < len(source):
        match = token.match(source, position)
        assert match is not None  # the last alternative matches any character
        kind = match.lastgroup or "other"
        text = match.group()
        position = match.end()
        if kind in ("space", "comment"):
            continue
        if kind == "slash":
            if previous == "" or previous in _BEFORE_EXPRESSION or previous in _KEYWORDS_BEFORE_EXPRESSION:
                body = _REGEX_BODY.match(source, position)
                if body is not None:
                    kind, text = "regex", "/" + body.group()
                    position = body.end()
            if kind == "slash":
                kind = "punct"
        previous = text if kind in ("punct", "word") else "a value"
        yield kind, text


def has_default_export(source: str) -> bool:
    """Whether the module exports a default (``export default ...``, ``export { x as default }``,
    ``export { default } from ...``): what Cloudflare calls for a modules Worker."""
    if "default" not in source or _QUICK_DEFAULT.search(source) is None:  # the plain test is ~50x faster
        return False
    if len(source) > _LEX_LIMIT:
        return True
    words = [text if kind in ("word", "punct") else "" for kind, text in _tokens(source)]
    for index, word in enumerate(words):
        if word != "export" or index + 1 == len(words):
            continue
        if words[index + 1] == "default":
            return True
        if words[index + 1] == "{":
            end = words.index("}", index) if "}" in words[index:] else len(words)
            if "default" in words[index + 2:end]:
                return True
    return False


def imported_modules(source: str) -> list[str]:
    """The specifiers the source imports or re-exports from, in order, once each: static
    ``import``/``export ... from`` and ``import("...")`` with a literal."""
    tokens = list(_tokens(source))
    found: list[str] = []
    for index, (kind, text) in enumerate(tokens):
        if kind != "string":
            continue
        before = tokens[index - 1][1] if index else ""
        before_two = tokens[index - 2][1] if index > 1 else ""
        if before in ("from", "import") or (before == "(" and before_two == "import"):
            specifier = text[1:-1]
            if specifier not in found:
                found.append(specifier)
    return found
