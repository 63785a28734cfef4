"""Environment overlays: ``environments.<name>`` merged over the base manifest (``--env NAME``).

Pure: YAML nodes in, YAML nodes out. Merging nodes rather than plain data keeps each value's
own line and column, and ``Overlay.source_path`` maps a path in the merged manifest back to
where it was written, so a problem inside an environment is reported where it is.

Rules: mappings merge key by key; a script's ``bindings`` merge by binding ``name`` (an
environment's binding replaces the base binding of that name whole, new names are appended);
every other value replaces the base value. ``name_suffix`` is not merged: it renames scripts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from deployer.manifest.nodes import MappingNode, Node, ScalarNode, SequenceNode


JsonPath = tuple[str | int, ...]

ENVIRONMENTS = "environments"
NAME_SUFFIX = "name_suffix"
_MAP_TAG = "tag:yaml.org,2002:map"


@dataclass(frozen=True, slots=True)
class Overlay:
    """The manifest for one environment (None: the base), without the ``environments`` key.

    ``origins`` maps ``id(node)`` of every node the environment put into ``root`` to the path
    where it was written (``environments.<name>...``).
    """

    root: MappingNode
    environment: str | None = None
    name_suffix: ScalarNode | None = None
    origins: dict[int, JsonPath] = field(default_factory=dict)
    # id(mapping node) -> {key: value}: walking a path must not rescan a 1,000-entry mapping
    # for every field of every script (that made planning quadratic).
    _keys: dict[int, dict[str, Node]] = field(default_factory=dict, repr=False, compare=False)

    def source_path(self, path: JsonPath) -> JsonPath:
        """Where the value at ``path`` of the merged manifest was written."""
        if not self.origins:  # the base manifest, or an environment that changes nothing
            return tuple(path)
        node: Node | None = self.root
        consumed, origin = 0, None
        for index, part in enumerate(path):
            node = self._child(node, part)
            if node is None:
                break
            found = self.origins.get(id(node))
            if found is not None:
                consumed, origin = index + 1, found
        return tuple(path) if origin is None else (*origin, *path[consumed:])

    def _child(self, node: Node | None, part: str | int) -> Node | None:
        if isinstance(node, MappingNode) and isinstance(part, str):
            keys = self._keys.get(id(node))
            if keys is None:
                # Later duplicates win, as in _entry.
                keys = self._keys[id(node)] = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
            return keys.get(part)
        return _child(node, part)


def environment_names(root: Node) -> tuple[str, ...] | None:
    """The names under ``environments:`` in file order, or None when there is no such mapping."""
    entry = _entry(root, ENVIRONMENTS)
    if entry is None or not isinstance(entry, MappingNode):
        return None
    return tuple(key.value for key, _ in entry.value if isinstance(key, ScalarNode))


def overlay(root: MappingNode, environment: str | None) -> Overlay:
    """Merge ``environments.<environment>`` over the rest of ``root``.

    With ``environment`` None, or a name the manifest does not declare (the caller decides
    whether that is an error), the result is the base manifest alone.
    """
    base = MappingNode(root.tag, [(k, v) for k, v in root.value if not _is_key(k, ENVIRONMENTS)],
                       root.line, root.column)
    environments = _entry(root, ENVIRONMENTS)
    over = _entry(environments, environment) if environment is not None else None
    if not isinstance(over, MappingNode) or over.tag != _MAP_TAG:
        return Overlay(base, environment)
    at: JsonPath = (ENVIRONMENTS, environment or "")
    suffix = _entry(over, NAME_SUFFIX)
    body = MappingNode(over.tag, [(k, v) for k, v in over.value if not _is_key(k, NAME_SUFFIX)],
                       over.line, over.column)
    origins: dict[int, JsonPath] = {}
    merged = _merge_mappings(base, body, (), at, origins)
    return Overlay(merged, environment, suffix if isinstance(suffix, ScalarNode) else None, origins)


def _merge(base: Node, over: Node, path: JsonPath, at: JsonPath, origins: dict[int, JsonPath]) -> Node:
    if _is_mapping(base) and _is_mapping(over):
        assert isinstance(base, MappingNode) and isinstance(over, MappingNode)
        return _merge_mappings(base, over, path, at, origins)
    if _is_bindings(path) and isinstance(base, SequenceNode) and isinstance(over, SequenceNode):
        return _merge_bindings(base, over, at, origins)
    origins[id(over)] = at
    return over


def _merge_mappings(
    base: MappingNode, over: MappingNode, path: JsonPath, at: JsonPath, origins: dict[int, JsonPath]
) -> MappingNode:
    entries = list(base.value)
    position = {key.value: i for i, (key, _) in enumerate(entries) if isinstance(key, ScalarNode)}
    for key, value in over.value:
        if not isinstance(key, ScalarNode):
            continue  # reported when the whole file was read
        name = key.value
        if name in position:
            base_key, base_value = entries[position[name]]
            entries[position[name]] = (base_key, _merge(base_value, value, (*path, name), (*at, name), origins))
        else:
            origins[id(value)] = origins[id(key)] = (*at, name)
            position[name] = len(entries)
            entries.append((key, value))
    return MappingNode(base.tag, entries, base.line, base.column)


def _merge_bindings(
    base: SequenceNode, over: SequenceNode, at: JsonPath, origins: dict[int, JsonPath]
) -> SequenceNode:
    items = list(base.value)
    position = {name: i for i, item in enumerate(items) if (name := _binding_name(item)) is not None}
    for index, item in enumerate(over.value):
        origins[id(item)] = (*at, index)
        name = _binding_name(item)
        if name is not None and name in position:
            items[position[name]] = item  # replaced whole: nothing of the base binding is kept
        else:
            if name is not None:
                position[name] = len(items)
            items.append(item)
    return SequenceNode(base.tag, items, base.line, base.column)


def _is_bindings(path: JsonPath) -> bool:
    return len(path) == 3 and path[0] == "scripts" and path[2] == "bindings"


def _binding_name(item: Node) -> str | None:
    name = _entry(item, "name")
    return name.value if isinstance(name, ScalarNode) else None


def _is_mapping(node: Node) -> bool:
    return isinstance(node, MappingNode) and node.tag == _MAP_TAG


def _is_key(node: Node, name: str) -> bool:
    return isinstance(node, ScalarNode) and node.value == name


def _entry(node: Node | None, key: str | None) -> Node | None:
    """The value of ``key`` in a mapping node (the last one when a key is repeated)."""
    if not isinstance(node, MappingNode) or key is None:
        return None
    found = [value for k, value in node.value if _is_key(k, key)]
    return found[-1] if found else None


def _child(node: Node | None, part: str | int) -> Node | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        return _entry(node, part)
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: Node = node.value[part]
        return child
    return None
