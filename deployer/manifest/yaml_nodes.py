"""Read a manifest file as YAML nodes that keep their line and column: size and encoding
checks, duplicate keys refused, aliases bounded (billion laughs), ``${VAR}`` filled in.

Used by ``manifest``; knows nothing of the manifest's meaning (that is ``validate``'s).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import ComposerError

from deployer.manifest.nodes import MappingNode, Node, ScalarNode, SequenceNode

from deployer.manifest import validate
from deployer.errors import DeployerError, Diagnostic, ManifestError
from deployer.manifest.validate import JsonPath


class _Composer:
    """Builds the nodes of ``nodes`` from a parser's events (in place of PyYAML's Composer,
    whose nodes carry an attribute dict and two marks each); anchors and aliases resolved."""

    if TYPE_CHECKING:  # provided by the parser (libyaml's or PyYAML's) and Resolver mixed in
        def get_event(self) -> Any: ...
        def resolve(self, kind: type[yaml.Node], value: str | None, implicit: Any) -> str: ...

    def __init__(self) -> None:
        self.anchors: dict[str, Node] = {}
        self._last_line = 0

    def _line(self, line: int) -> int:
        """``line`` counted from 1; the nodes on one line (a key and its value) share one int
        object: a number past 256 is an object of its own, 32 bytes for every node otherwise."""
        if line + 1 != self._last_line:
            self._last_line = line + 1
        return self._last_line

    def get_single_node(self) -> Node | None:
        self.get_event()  # the stream's start
        document = None
        event = self.get_event()
        if not isinstance(event, yaml.StreamEndEvent):
            document = self.compose_node(self.get_event())  # after the document's start
            self.get_event()  # the document's end
            self.anchors = {}
            event = self.get_event()
        if not isinstance(event, yaml.StreamEndEvent):
            raise ComposerError("expected a single document in the stream", _yaml_mark(document),
                                "but found another document", event.start_mark)
        return document

    def compose_node(self, event: Any) -> Node:
        """The node that starts with ``event`` (the parser's next events make the rest of it)."""
        kind = type(event)
        if kind is _ALIAS:
            if event.anchor not in self.anchors:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
            return self.anchors[event.anchor]
        anchor, tag, mark = event.anchor, event.tag, event.start_mark
        line, column = self._line(mark.line), mark.column + 1
        if anchor is not None and anchor in self.anchors:
            raise ComposerError(f"found duplicate anchor {anchor!r}; first occurrence",
                                _yaml_mark(self.anchors[anchor]), "second occurrence", mark)
        if kind is _SCALAR:
            if tag is None or tag == "!":
                tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
            scalar = ScalarNode(tag, event.value, line, column)
            if anchor is not None:
                self.anchors[anchor] = scalar
            return scalar
        get_event, compose = self.get_event, self.compose_node
        node: MappingNode | SequenceNode
        if kind is _MAPPING_START:
            if tag is None or tag == "!":
                tag = self.resolve(yaml.MappingNode, None, event.implicit)
            node = MappingNode(tag, (), line, column)
            if anchor is not None:
                self.anchors[anchor] = node  # before the children: an alias inside refers to it
            while type(child := get_event()) is not _MAPPING_END:
                key = compose(child)
                node.append(key, compose(get_event()))
            return node
        if tag is None or tag == "!":
            tag = self.resolve(yaml.SequenceNode, None, event.implicit)
        node = SequenceNode(tag, [], line, column)
        if anchor is not None:
            self.anchors[anchor] = node
        items = node.value
        while type(child := get_event()) is not _SEQUENCE_END:
            items.append(compose(child))
        return node


# The parsers make exactly these classes (compared with ``is``: the composer's inner loop).
_ALIAS, _SCALAR = yaml.AliasEvent, yaml.ScalarEvent
_MAPPING_START, _MAPPING_END, _SEQUENCE_END = yaml.MappingStartEvent, yaml.MappingEndEvent, yaml.SequenceEndEvent


def _yaml_mark(node: Node | None) -> yaml.Mark | None:
    """A PyYAML mark at ``node``, for a ComposerError (its messages are built from marks)."""
    return None if node is None else yaml.Mark("", 0, node.line - 1, node.column - 1, None, 0)


if getattr(yaml, "__with_libyaml__", False):
    from yaml._yaml import CParser

    # CParser composes nodes of its own too (get_single_node): the composer above comes first.
    class _LibyamlLoader(_Composer, CParser,  # type: ignore[misc]
                         yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's parser (~8x faster than the pure-Python one) feeding the composer above."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


class PythonLoader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, _Composer,
                   yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """PyYAML's pure-Python parser feeding the same composer (where libyaml is missing)."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


LOADER: type[PythonLoader] | type[_LibyamlLoader] = (
    _LibyamlLoader if getattr(yaml, "__with_libyaml__", False) else PythonLoader)

MAX_MANIFEST_BYTES = 10 * 1024 * 1024
MAX_NODES = 1_000_000  # counted with every alias expanded: refuses "billion laughs" documents
# Text counted the same way: a few aliases of one long string must not become gigabytes in a
# plan. Without aliases a manifest holds at most MAX_MANIFEST_BYTES of text.
MAX_EXPANDED_CHARS = 3 * MAX_MANIFEST_BYTES
MAX_DEPTH = 100  # a manifest needs about 6 levels

TAG = "tag:yaml.org,2002:"
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCTORS = {
    TAG + "int": _CONSTRUCTOR.construct_yaml_int,
    TAG + "float": _CONSTRUCTOR.construct_yaml_float,
    TAG + "bool": _CONSTRUCTOR.construct_yaml_bool,
    TAG + "null": _CONSTRUCTOR.construct_yaml_null,
}
_PLAIN_TAGS = frozenset({TAG + "str", *_CONSTRUCTORS})  # scalars converted again cheaply, with nothing to report
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN = re.compile(r"[^${}]+")  # text that cannot start or end a placeholder


def compose(text: str) -> Node | None:
    """The node tree of one YAML document (None when empty); raises PyYAML's errors."""
    loader = LOADER(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def read_text(path: Path, file: str) -> str:
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_MANIFEST_BYTES:
                raise ManifestError([Diagnostic(
                    file, 0, 0, "", f"the manifest is {size} bytes; at most 10 MiB is accepted")])
            raw = stream.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise DeployerError(f"manifest not found: {file} (pass -f/--file to point at another)") from None
    except IsADirectoryError:
        raise DeployerError(f"manifest {file} is a directory (pass -f/--file to point at a file)") from None
    except OSError as exc:
        raise DeployerError(f"cannot read manifest {file}: {exc.strerror}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:  # it grew while we looked
        raise ManifestError([Diagnostic(file, 0, 0, "", "the manifest is larger than 10 MiB")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"the manifest is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)"
        raise ManifestError([Diagnostic(file, line, col, "", message)]) from exc


class _Stop(Exception):
    """Conversion cannot go on (too many nodes, too deep, a cycle); the diagnostic is recorded."""


class Parser:
    """YAML text -> (root node, plain data) plus diagnostics and the filled-in strings.

    ``filled`` maps ``id(node)`` of every string scalar (key or value) holding a ``$`` to its
    text with variables filled in, or None when a variable is unset (except at the paths
    ``verbatim`` picks, which keep their text as written); ``fill`` fills the nodes
    of one environment's manifest (a variable used only by another environment need not be
    set). Aliased nodes are converted once and shared, while ``MAX_NODES`` counts them as if
    expanded.
    """

    def __init__(self, file: str, environ: Mapping[str, str], *, allow_unset: bool = False,
                 verbatim: Callable[[JsonPath], bool] = lambda path: False) -> None:
        self.file = file
        self.environ = environ
        self.allow_unset = allow_unset
        self.verbatim = verbatim  # paths whose strings keep their ${...} as written
        self.diagnostics: list[Diagnostic] = []
        self.filled: dict[int, str | None] = {}
        self._converted: dict[int, tuple[Any, int, int]] = {}  # id(node) -> (data, expanded nodes, chars)
        self._open: set[int] = set()  # collections being converted, to catch recursive aliases
        self._count = 0
        self._chars = 0
        self._walked: set[int] = set()

    def parse(self, text: str) -> tuple[Node | None, Any]:
        try:
            root = compose(text)
        except yaml.MarkedYAMLError as exc:
            self._syntax_error(exc, text)
            return None, None
        except yaml.reader.ReaderError as exc:
            self._reader_error(exc, text)
            return None, None
        except yaml.YAMLError as exc:
            self._report(0, 0, (), f"invalid YAML: {exc}")
            return None, None
        except RecursionError:
            self._report(0, 0, (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            return None, None
        if root is None:
            self._report(1, 1, (), "the manifest is empty (it needs at least 'version: 1' and 'scripts')")
            return None, None
        try:
            return root, self._convert(root, (), 0)
        except _Stop:
            return None, None
        except RecursionError:
            self._report(*mark(root), (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            return None, None

    def convert_again(self, node: Node) -> Any:
        """Plain data for a node tree made of nodes ``parse`` converted already (an overlay):
        their problems were reported then, so none is reported twice."""
        reported, self._count, self._chars = len(self.diagnostics), 0, 0
        try:
            return self._convert(node, (), 0)
        finally:
            del self.diagnostics[reported:]

    def forget_conversions(self) -> None:
        """Let go of the converted data and the filled nodes remembered for further overlays
        (a large manifest's memory) when no further overlay will be read."""
        self._converted.clear()
        self._walked.clear()

    def fill(self, node: Node, source: Callable[[JsonPath], JsonPath]) -> None:
        """Fill every ``${VAR}`` under ``node`` (each node once); ``source`` maps a path to
        where it was written, for the messages."""
        self._fill_under(node, (), source)

    def _fill_under(self, node: Node, path: JsonPath, source: Callable[[JsonPath], JsonPath]) -> None:
        # A method, not a closure calling itself: that closure would be a reference cycle holding
        # the whole node tree until the cyclic collector ran (the CLI runs mostly without it).
        seen = self._walked  # a node filled for one environment is filled for all (ids are kept alive)
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            if node.tag == TAG + "str" and "$" in node.value and not self.verbatim(path):
                self._fill(node, source(path))
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    if "$" in key.value:
                        self._fill(key, source((*path, key.value)))
                    self._fill_under(value, (*path, key.value), source)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._fill_under(item, (*path, index), source)

    def _report(self, line: int, col: int, path: JsonPath, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.file, line, col, validate.json_path(path), message))

    def _syntax_error(self, exc: yaml.MarkedYAMLError, text: str) -> None:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = exc.problem or exc.context or "unreadable"
        if mark and _char_at(text, mark.line, mark.column) == "\t":
            problem = "a tab character here: YAML indentation must use spaces"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.problem and exc.context_mark:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        self._report(line, col, (), message)

    def _reader_error(self, exc: yaml.reader.ReaderError, text: str) -> None:
        position = min(exc.position, len(text))
        line = text.count("\n", 0, position) + 1
        col = position - (text.rfind("\n", 0, position) + 1) + 1
        character = text[position] if position < len(text) else ""
        code = f"U+{ord(character):04X}" if character else "a character"
        self._report(line, col, (), f"invalid YAML: {code} is a control character, which YAML does not allow")

    def _grow(self, size: int, chars: int, node: Node, path: JsonPath) -> None:
        self._count += size
        self._chars += chars
        if self._count > MAX_NODES:
            message = f"the manifest expands to more than {MAX_NODES} values (aliases repeated too often?)"
            self._report(*mark(node), path, message)
            raise _Stop
        if self._chars > MAX_EXPANDED_CHARS:
            message = (f"the manifest expands to more than {MAX_EXPANDED_CHARS // (1024 * 1024)} MiB of text "
                       f"(an alias of a long value repeated too often?)")
            self._report(*mark(node), path, message)
            raise _Stop

    def _convert(self, node: Node, path: JsonPath, depth: int) -> Any:
        key = id(node)
        done = self._converted.get(key)
        if done is not None:
            self._grow(done[1], done[2], node, path)
            return done[0]
        if key in self._open:
            self._report(*mark(node), path, "an alias here refers to a value that contains it")
            raise _Stop
        if depth > MAX_DEPTH:
            self._report(*mark(node), (), f"the manifest is nested too deeply (at most {MAX_DEPTH} levels)")
            raise _Stop
        before, chars_before = self._count, self._chars
        self._grow(1, len(node.value) if isinstance(node, ScalarNode) else 0, node, path)
        value: Any
        if isinstance(node, ScalarNode):
            value = self._scalar(node, path)
        else:
            self._open.add(key)
            if isinstance(node, MappingNode):
                value = self._mapping(node, path, depth)
            else:
                assert isinstance(node, SequenceNode)
                value = self._sequence(node, path, depth)
            self._open.discard(key)
        if not isinstance(node, ScalarNode) or node.tag not in _PLAIN_TAGS:
            # Plain scalars (most of the nodes) are converted again rather than remembered.
            self._converted[key] = (value, self._count - before, self._chars - chars_before)
        return value

    def _scalar(self, node: ScalarNode, path: JsonPath) -> Any:
        if node.tag == TAG + "str":
            return node.value
        if node.tag in _CONSTRUCTORS:
            return _construct(node)
        if node.tag == TAG + "timestamp":
            return node.value  # a date-like string is still just a string here
        self._report(*mark(node), path, f"unsupported YAML tag {node.tag!r}")
        return node.value

    def _sequence(self, node: SequenceNode, path: JsonPath, depth: int) -> list[Any]:
        if node.tag != TAG + "seq":
            self._report(*mark(node), path, f"unsupported YAML tag {node.tag!r}")
        return [self._convert(item, (*path, index), depth + 1) for index, item in enumerate(node.value)]

    def _mapping(self, node: MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        if node.tag != TAG + "map":
            self._report(*mark(node), path, f"unsupported YAML tag {node.tag!r}")
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self._report(*mark(key_node), path, "a key must be a plain string, not a list or mapping")
                continue
            if key_node.tag == TAG + "merge":
                self._report(*mark(key_node), path,
                             "merge keys ('<<') are not supported; use an alias for the whole value")
                continue
            key = key_node.value
            key_path = (*path, key)
            self._grow(0, len(key), key_node, key_path)
            if key in first_line:
                self._report(*mark(key_node), key_path,
                             f"duplicate key {key!r} (first at line {first_line[key]})")
            else:
                first_line[key] = key_node.line
            result[key] = self._convert(value_node, key_path, depth + 1)
        return result

    def _fill(self, node: ScalarNode, path: JsonPath) -> None:
        """Fill ``${VAR}`` / ``${VAR:-default}`` in one scalar (see ``fill_text``)."""
        if id(node) in self.filled:
            return
        filled, unset, problems = fill_text(node.value, self.environ)
        if not self.allow_unset:
            problems += [f"environment variable {name} is not set (export it, or write ${{{name}:-default}})"
                         for name in unset]
        for message in problems:
            self._report(*mark(node), path, message)
        self.filled[id(node)] = None if problems or unset else filled


def plain_value(node: Node, filled: Mapping[int, str | None]) -> Any:
    """A node's value with every ``${VAR}`` filled in (for values the schema already checked;
    a string whose variable is unset is None)."""
    if isinstance(node, MappingNode):
        return {k.value: plain_value(v, filled) for k, v in node.value if isinstance(k, ScalarNode)}
    if isinstance(node, SequenceNode):
        return [plain_value(item, filled) for item in node.value]
    if node.tag in (TAG + "str", TAG + "timestamp"):
        return filled.get(id(node), node.value)
    return _construct(node) if node.tag in _CONSTRUCTORS and isinstance(node, ScalarNode) else node.value


def _construct(node: ScalarNode) -> Any:
    """The int, float, bool or None a scalar of one of those tags stands for (PyYAML's rules)."""
    return _CONSTRUCTORS[node.tag](yaml.ScalarNode(node.tag, node.value))
def fill_text(text: str, environ: Mapping[str, str]) -> tuple[str, list[str], list[str]]:
    """``text`` with its placeholders filled: ``(filled, unset variables, problems)``.

    ``${NAME}`` is NAME's value; ``${NAME:-default}`` the default when NAME is unset or empty,
    and the default may itself hold placeholders (``${A:-${B:-x}}``), filled only when used.
    Before a ``{``, ``$$`` stands for one ``$``: ``$${X}`` is the text ``${X}`` and ``$$${X}``
    is ``$`` followed by X's value. A ``$`` anywhere else is itself. Anything else that opens
    ``${`` (a bad name, no closing ``}``), or a ``{`` inside a default, is a problem, never a guess.
    """
    unset: list[str] = []
    problems: list[str] = []
    filled, _ = _template(text, 0, environ, unset, problems, inside=False)
    return filled, unset, problems


def _template(text: str, at: int, environ: Mapping[str, str], unset: list[str], problems: list[str], *,
              inside: bool) -> tuple[str, int]:
    """Fill from ``at`` to the end, or (``inside`` a default) to the ``}`` that closes it;
    returns the text and where it stopped."""
    out: list[str] = []
    end = len(text)
    while at < end:
        char = text[at]
        if char == "}":
            if inside:
                return "".join(out), at
            out.append(char)
            at += 1
        elif char == "{":
            if inside:
                # The first '}' ends a default, so ${A:-{x}} would give A's value plus "}".
                problems.append(f"{text!r}: a '{{' inside a ${{NAME:-default}} default is ambiguous (the first "
                                "'}' ends the default); set the value in the environment instead")
                return "".join(out), len(text)
            out.append(char)
            at += 1
        elif char != "$":
            plain = _PLAIN.match(text, at)
            assert plain is not None
            out.append(plain.group())
            at = plain.end()
        else:
            run_end = at
            while run_end < end and text[run_end] == "$":
                run_end += 1
            if run_end == end or text[run_end] != "{":
                out.append(text[at:run_end])
                at = run_end
                continue
            dollars = run_end - at
            out.append("$" * (dollars // 2))
            if dollars % 2 == 0:  # every $ escaped: a literal '{' follows
                out.append("{")
                at = run_end + 1
                continue
            value, at = _placeholder(text, run_end - 1, environ, unset, problems)
            out.append(value)
    return "".join(out), at


def _placeholder(text: str, at: int, environ: Mapping[str, str], unset: list[str],
                 problems: list[str]) -> tuple[str, int]:
    """The value of the placeholder whose ``${`` is at ``at``, and where it ends."""
    name = _NAME.match(text, at + 2)
    if name is not None:
        after = name.end()
        value = environ.get(name.group())
        if text.startswith("}", after):
            if value is None:
                unset.append(name.group())
                return "", after + 1
            return value, after + 1
        if text.startswith(":-", after):
            default_unset: list[str] = []
            reported = len(problems)
            default, close = _template(text, after + 2, environ, default_unset, problems, inside=True)
            if len(problems) > reported:
                return "", len(text)
            if close < len(text):
                if value:  # like the shell's :- an empty value takes the default
                    return value, close + 1
                unset += default_unset
                return default, close + 1
    close = text.find("}", at + 2)
    written = text[at:close + 1] if close >= 0 and name is None else text[at:]
    problems.append(f"{written!r} is not a valid placeholder; write ${{NAME}} or ${{NAME:-default}}")
    return "", len(text)


def mark(node: Node) -> tuple[int, int]:
    """Where ``node`` starts, counted from 1."""
    return node.line, node.column


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line + 1)
    if line < len(lines) and column < len(lines[line]):
        return lines[line][column]
    return ""


def locate(root: Node, path: JsonPath, at_key: bool) -> tuple[int, int]:
    """The position of the value at ``path`` (or of its key), or of the deepest part that exists."""
    node, key_node = root, None
    for part in path:
        if isinstance(node, MappingNode):
            # The last of duplicate keys wins, as in the converted data.
            found = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not found:
                break
            key_node, node = found[-1]
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            key_node, node = None, node.value[part]
        else:
            break
    return mark(key_node if at_key and key_node is not None else node)
