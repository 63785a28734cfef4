"""The manifest as a tree of YAML nodes (``yaml_nodes`` composes it): every value with the
line and column it starts at, for messages that point into the file."""
from __future__ import annotations

from collections.abc import Iterable, Iterator


class _Node:
    """A composed YAML node: its resolved ``tag`` and where it starts (``line`` and ``column``
    counted from 1, as messages show them). Slotted: a large manifest has hundreds of thousands
    of nodes, and PyYAML's (an attribute dict and two marks each) were most of its memory."""

    __slots__ = ("column", "line", "tag")

    def __init__(self, tag: str, line: int, column: int) -> None:
        self.tag, self.line, self.column = tag, line, column


class ScalarNode(_Node):
    __slots__ = ("value",)

    def __init__(self, tag: str, value: str, line: int, column: int) -> None:
        super().__init__(tag, line, column)
        self.value = value


class SequenceNode(_Node):
    __slots__ = ("value",)

    def __init__(self, tag: str, value: list[Node], line: int, column: int) -> None:
        super().__init__(tag, line, column)
        self.value = value


class MappingNode(_Node):
    """``value`` gives its (key, value) pairs, kept as one flat list: a tuple for each of a large
    manifest's entries was another 64 bytes each."""

    __slots__ = ("_flat",)

    def __init__(self, tag: str, pairs: Iterable[tuple[Node, Node]], line: int, column: int) -> None:
        super().__init__(tag, line, column)
        self._flat: list[Node] = [node for pair in pairs for node in pair]

    @property
    def value(self) -> Iterator[tuple[Node, Node]]:
        flat = iter(self._flat)
        return zip(flat, flat)

    def append(self, key: Node, value: Node) -> None:
        self._flat += (key, value)


Node = ScalarNode | SequenceNode | MappingNode
