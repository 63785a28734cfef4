"""The rules for manifest strings (ids, names, keys), shared by the schema's messages, the
semantic checks after ``${VAR}`` is filled in, and the kinds that declare their keys."""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule for one kind of string; ``words`` completes "... is not ___"."""

    words: str
    pattern: re.Pattern[str]
    max_length: int | None = None

    def accepts(self, value: str) -> bool:
        too_long = self.max_length is not None and len(value) > self.max_length
        return not too_long and self.pattern.fullmatch(value) is not None


HEX_ID = Rule("32 lowercase hex characters", re.compile(r"[0-9a-f]{32}"))
SCRIPT_NAME = Rule(
    "a valid script name (lowercase letters, digits, '-' and '_', not starting with '-', "
    "at most 63 characters)",
    re.compile(r"[a-z0-9_][a-z0-9-_]*"),
    max_length=63,
)
NAMESPACE_KEY = Rule(
    "a valid namespace key (letters, digits, '-' and '_', not starting with '-')",
    re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*"),
)
# Written so that Python and the schema's ECMAScript regexes read it alike (no DOTALL flag).
TITLE = Rule("a title of 1 to 512 characters, not only spaces", re.compile(r"[\s\S]*\S[\s\S]*"), max_length=512)
BUCKET_NAME = Rule(
    "a valid R2 bucket name (3 to 63 lowercase letters, digits and '-', starting and ending with a letter or "
    "digit)",
    re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"),
)
DATABASE_NAME = Rule("a valid D1 database name (1 to 64 letters, digits, '-' and '_')",
                     re.compile(r"[A-Za-z0-9_-]{1,64}"))
QUEUE_NAME = Rule("a valid queue name (1 to 63 letters, digits, '-' and '_')", re.compile(r"[A-Za-z0-9_-]{1,63}"))
UUID = Rule("a UUID (such as 0c3a4f8e-5b2d-4e3f-9a1b-2c3d4e5f6a7b)",
            re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"))
CLASS_NAME = Rule("a JavaScript class name", re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*"))
COMPATIBILITY_DATE = Rule("a date written YYYY-MM-DD", re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"))
NAME_SUFFIX = Rule(
    "a script name suffix (lowercase letters, digits, '-' and '_')", re.compile(r"[a-z0-9_-]*"), max_length=62
)
PROJECT = Rule(
    "a valid project name (letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 "
    "characters)",
    re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*"),
    max_length=63,
)

PLACEHOLDER_ALTERNATIVE = r".*\$\{[^}]+\}.*"
"""What the schema's patterns accept besides a literal value: a string holding ``${...}``."""


def schema_pattern(rule: Rule) -> str:
    """The schema's pattern for ``rule``: the literal form, or any string with a placeholder."""
    return f"^({rule.pattern.pattern}|{PLACEHOLDER_ALTERNATIVE})$"



# ECMAScript reserved words, plus the ones reserved in strict mode and modules.
JS_RESERVED_WORDS = frozenset(
    """await break case catch class const continue debugger default delete do else enum export
    extends false finally for function if implements import in instanceof interface let new null
    package private protected public return static super switch this throw true try typeof var
    void while with yield""".split()
)


_ASCII_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def is_js_identifier(name: str) -> bool:
    """True for an ASCII JavaScript identifier (letters, digits, ``_`` and ``$``, not starting
    with a digit): Cloudflare refuses binding names outside ASCII, which JavaScript allows."""
    return _ASCII_IDENTIFIER.fullmatch(name) is not None


def rule_for_pattern(pattern: str) -> Rule | None:
    """The rule whose schema pattern is ``pattern`` (to word a schema error as the rule does)."""
    rules = (value for value in globals().values() if isinstance(value, Rule))
    return next((rule for rule in rules if schema_pattern(rule) == pattern), None)
