"""How a value from the manifest (or from Cloudflare) is shown: one escaping function per output
format, so that no name, title, key, pattern or path can forge a plan line, colour the
terminal or break out of a markdown table. (``redact`` removes secrets; this makes the rest
printable.)"""
from __future__ import annotations

import re

# C0 and C1 controls (ESC, CR, LF, ...), DEL, Unicode line/paragraph separators and the bidi
# controls that reorder what a terminal or a browser shows.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters markdown (GitHub's) gives a meaning to inside a table cell; each is escaped with a
# backslash, which CommonMark allows before any ASCII punctuation.
_MARKDOWN_SIGNIFICANT = re.compile(r"([\\`*_\[\]<>|~&])")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_text(value: str) -> str:
    """``value`` for a terminal or a log: every control character written as ``\\n``,
    ``\\x1b``, ``\\u2028``, ... so it stays on its line and cannot move the cursor or colour."""
    return _UNPRINTABLE.sub(_escaped, value)


def escape_markdown(value: str, *, code: bool = False) -> str:
    """``value`` for a markdown table cell: control characters as in ``escape_text``, then
    markdown's own characters (table pipes, backticks, HTML, links, emphasis) made literal.
    With ``code``, the value as a whole code span, fenced by more backticks than it holds."""
    text = escape_text(value)
    if not code:
        return _MARKDOWN_SIGNIFICANT.sub(r"\\\1", text)
    # Inside a code span only the pipe needs escaping (GitHub splits cells on it first).
    text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{fence}{padded}{fence}"
