"""The manifest as a tree of YAML nodes (``yaml_nodes`` composes it): every value with the
line and column it starts at, for messages that point into the file."""
from __future__ import annotations

from typing import Any


class _Node:
    """A composed YAML node: its resolved ``tag``, its ``value`` and where it starts (``line``
    and ``column`` from 0). Slotted: a large manifest has hundreds of thousands of them, and
    PyYAML's nodes (an attribute dict and two marks each) were most of its memory."""

    __slots__ = ("column", "line", "tag", "value")

    def __init__(self, tag: str, value: Any, line: int, column: int) -> None:
        self.tag, self.value, self.line, self.column = tag, value, line, column


class ScalarNode(_Node):
    value: str


class SequenceNode(_Node):
    value: list[Node]


class MappingNode(_Node):
    value: list[tuple[Node, Node]]


Node = ScalarNode | SequenceNode | MappingNode
