"""A graph of resources and how they depend on each other, drawn as Mermaid or DOT.

Pure: nodes and edges carry kind names as strings, and a node's shape comes from what the registry
says of its kind, so new kinds need no change here (``plan/diagram.py`` builds graphs from plans
and manifests). Output is deterministic.
"""
from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from deployer.kinds.registry import ATTACHMENT_KINDS, RESOURCE_KINDS
from deployer.models import Action

MAX_NODES = 150  # past this, a diagram shows one box per kind and action (GitHub renders slowly)
MAX_LABEL = 80  # characters of a label kept; a 512-character title would stretch every box


class Relation(enum.Enum):
    """What an edge says: ``source`` binds / routes to / consumes / goes before ``target``."""

    BINDS = "binds"
    ROUTES_TO = "routes to"
    CONSUMES = "consumes"
    BEFORE = "before"


@dataclass(frozen=True, slots=True)
class Node:
    """One resource: ``id`` is unique in its graph (``kind:name``), ``label`` says which one it is;
    ``action`` None: not part of a plan (``deployer graph``)."""

    id: str
    kind: str
    label: str
    action: Action | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` -> ``target`` by ``label``; ``count`` > 1 when a summary merged several edges."""

    source: str
    target: str
    label: Relation
    count: int = 1


@dataclass(frozen=True, slots=True)
class Graph:
    """Nodes sorted by id and edges sorted by (source, target, label), each once; ``note`` is shown
    with the diagram (why it was summarised). Build it with ``make_graph``."""

    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    note: str | None = None


def make_graph(nodes: Iterable[Node], edges: Iterable[Edge], note: str | None = None) -> Graph:
    """The graph of ``nodes`` and of the ``edges`` between them, in a canonical order so that
    equal inputs give equal graphs and equal text. An edge naming a node that is not in ``nodes``
    is left out (a filter removed that end); a node id given twice keeps its first node."""
    by_id: dict[str, Node] = {}
    for node in nodes:
        by_id.setdefault(node.id, node)
    kept: dict[tuple[str, str, Relation], Edge] = {}
    for edge in edges:
        if edge.source in by_id and edge.target in by_id and edge.source != edge.target:
            kept.setdefault((edge.source, edge.target, edge.label), edge)
    return Graph(
        nodes=tuple(by_id[key] for key in sorted(by_id)),
        edges=tuple(kept[key] for key in sorted(kept, key=lambda k: (k[0], k[1], k[2].value))),
        note=note,
    )


# --- the two reductions a plan's diagram goes through -------------------------------------


def _changed(node: Node) -> bool:
    return node.action is not None and node.action is not Action.NO_OP


def around_changes(graph: Graph) -> Graph:
    """Only what changes, and the unchanged nodes that connect to a change (the namespace an
    updated script binds): a plan of 500 unchanged scripts and one change stays one change."""
    changed = {node.id for node in graph.nodes if _changed(node)}
    neighbours = {edge.target for edge in graph.edges if edge.source in changed}
    neighbours |= {edge.source for edge in graph.edges if edge.target in changed}
    kept = changed | neighbours
    return make_graph((node for node in graph.nodes if node.id in kept), graph.edges, graph.note)


_COUNTED = {
    Action.CREATE: "to create",
    Action.UPDATE: "to update",
    Action.DELETE: "to delete",
    Action.FORGET: "to forget",
    Action.ADOPT: "to adopt",
    Action.NO_OP: "unchanged",
    None: "in all",
}


def summarise(graph: Graph, limit: int = MAX_NODES) -> Graph:
    """``graph`` itself up to ``limit`` nodes; past it, one node per kind and action ("412 to
    create") with the edges between those groups counted, and a note saying so. A group of one
    keeps its own node."""
    if len(graph.nodes) <= limit:
        return graph
    groups: dict[tuple[str, Action | None], list[Node]] = defaultdict(list)
    for node in graph.nodes:
        groups[(node.kind, node.action)].append(node)
    group_of: dict[str, str] = {}
    nodes = []
    for (kind, action), members in groups.items():
        if len(members) == 1:
            nodes.append(members[0])
            group_of[members[0].id] = members[0].id
            continue
        group_id = f"{kind}:*:{action.value if action else 'all'}"
        nodes.append(Node(group_id, kind, f"{len(members)} {_COUNTED[action]}", action))
        group_of.update((member.id, group_id) for member in members)
    counts = Counter((group_of[e.source], group_of[e.target], e.label) for e in graph.edges)
    edges = [Edge(source, target, label, count) for (source, target, label), count in counts.items()]
    note = f"{len(graph.nodes)} resources, more than {limit}: one box per kind and action"
    return make_graph(nodes, edges, note)


# --- Mermaid ------------------------------------------------------------------------------

# Mermaid has no escape character, only entity codes (#quot;, #35;: decimal) that it turns into
# HTML entities (https://mermaid.js.org/syntax/flowchart.html#entity-codes-to-escape-characters).
# Everything but these characters is written as a code, so a title cannot end its label (")
# or the markdown code block (`), open an entity (# &), a tag (<), a directive or comment (%%),
# a link label (|) or math ($$), nor smuggle in Mermaid's own placeholders (non-ASCII).
_MERMAID_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !'()*+,-./=?@^_~")

_CLASSES = {  # GitHub's diff colours; no-op is grey and dashed, so changes stand out
    Action.CREATE: ("create", "fill:#dafbe1,stroke:#1a7f37,color:#0f5323"),
    Action.UPDATE: ("update", "fill:#fff8c5,stroke:#9a6700,color:#4d2d00"),
    Action.DELETE: ("delete", "fill:#ffebe9,stroke:#cf222e,color:#82071e"),
    Action.FORGET: ("forget", "fill:#fbefff,stroke:#8250df,color:#512a97"),
    Action.ADOPT: ("adopt", "fill:#ddf4ff,stroke:#0969da,color:#0a3069"),
    Action.NO_OP: ("noop", "fill:#f6f8fa,stroke:#8c959f,color:#57606a,stroke-dasharray:4 3"),
}
_SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.FORGET: "!", Action.ADOPT: "<",
            Action.NO_OP: "="}
_ORDER = (Action.CREATE, Action.UPDATE, Action.DELETE, Action.FORGET, Action.ADOPT, Action.NO_OP)

# Shapes by role: owned resources are stores (cylinders), an attachment kind names its own
# (``AttachmentKind.diagram_shape``: triggers stadiums, schedules hexagons); anything else a box.
_MERMAID_SHAPES = {"store": ('[("', '")]'), "trigger": ('(["', '"])'), "schedule": ('{{"', '"}}'),
                   "box": ('["', '"]')}
_DOT_SHAPES = {"store": "cylinder", "trigger": "oval", "schedule": "hexagon"}


def _shape(kind: str) -> str:
    if kind in RESOURCE_KINDS:
        return "store"
    attached = ATTACHMENT_KINDS.get(kind)
    return attached.diagram_shape if attached is not None else "box"


def mermaid_text(text: str) -> str:
    """``text`` safe inside a quoted Mermaid label: one line, with every character that means
    something to Mermaid, HTML or markdown written as an entity code."""
    return "".join(
        char if char in _MERMAID_PLAIN else "#quot;" if char == '"' else f"#{ord(char)};"
        for char in _one_line(text)
    )


def _one_line(text: str) -> str:
    return "".join(char if char.isprintable() else " " for char in text)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _heading(node: Node) -> str:
    symbol = _SYMBOLS[node.action] + " " if node.action is not None else ""
    return f"{symbol}{node.kind}"


def render_mermaid(graph: Graph) -> str:
    """A ``flowchart LR``: one box per node (kind, then label), labelled edges ("before" dotted),
    node styles per action and a legend of the actions drawn. Every label is escaped."""
    ids = {node.id: f"n{index}" for index, node in enumerate(graph.nodes, 1)}
    lines = ["flowchart LR"]
    if graph.note is not None:
        lines.append(f'  note["{mermaid_text(graph.note)}"]')
    for node in graph.nodes:
        start, end = _MERMAID_SHAPES[_shape(node.kind)]
        lines.append(f"  {ids[node.id]}{start}{mermaid_text(_heading(node))}<br>{mermaid_text(_short(node.label))}{end}")
    for edge in graph.edges:
        arrow = "-.->" if edge.label is Relation.BEFORE else "-->"
        lines.append(f'  {ids[edge.source]} {arrow}|"{mermaid_text(_edge_label(edge))}"| {ids[edge.target]}')
    actions = [action for action in _ORDER if any(node.action is action for node in graph.nodes)]
    if actions:
        lines += ['  subgraph legend["Legend"]', "    direction LR"]
        lines += [f'    legend_{_CLASSES[a][0]}["{mermaid_text(f"{_SYMBOLS[a]} {a.value}")}"]' for a in actions]
        lines.append("  end")
    for action in actions:
        name, style = _CLASSES[action]
        members = [ids[node.id] for node in graph.nodes if node.action is action] + [f"legend_{name}"]
        lines += [f"  classDef {name} {style}", f"  class {','.join(members)} {name}"]
    if graph.note is not None:
        lines += ["  classDef note fill:#ffffff,stroke:#d0d7de,color:#57606a", "  class note note"]
    return "\n".join(lines) + "\n"


def _edge_label(edge: Edge) -> str:
    return edge.label.value if edge.count == 1 else f"{edge.label.value} ({edge.count})"


# --- DOT (Graphviz) -----------------------------------------------------------------------

_DOT_COLORS = {  # fill, border
    Action.CREATE: ("#dafbe1", "#1a7f37"),
    Action.UPDATE: ("#fff8c5", "#9a6700"),
    Action.DELETE: ("#ffebe9", "#cf222e"),
    Action.FORGET: ("#fbefff", "#8250df"),
    Action.ADOPT: ("#ddf4ff", "#0969da"),
    Action.NO_OP: ("#f6f8fa", "#8c959f"),
}


def dot_text(text: str) -> str:
    """``text`` safe inside a quoted DOT string: one line, backslashes and quotes escaped (so
    neither ``\\N``-style label escapes nor a closing quote get through)."""
    return _one_line(text).replace("\\", "\\\\").replace('"', '\\"')


def render_dot(graph: Graph) -> str:
    """The same graph for Graphviz: ``digraph`` left to right, filled nodes per action, a legend
    cluster of the actions drawn, the note as the graph's label. Every label is escaped."""
    ids = {node.id: f"n{index}" for index, node in enumerate(graph.nodes, 1)}
    lines = ["digraph deployer {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];']
    if graph.note is not None:
        lines += [f'  label="{dot_text(graph.note)}";', "  labelloc=t;"]
    for node in graph.nodes:
        attributes = [f'label="{dot_text(_heading(node))}\\n{dot_text(_short(node.label))}"']
        if _shape(node.kind) in _DOT_SHAPES:
            attributes.append(f"shape={_DOT_SHAPES[_shape(node.kind)]}")
        if node.action is not None:
            fill, border = _DOT_COLORS[node.action]
            attributes += [f'fillcolor="{fill}"', f'color="{border}"']
            if node.action is Action.NO_OP:
                attributes.append('style="rounded,filled,dashed"')
        lines.append(f"  {ids[node.id]} [{', '.join(attributes)}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.label is Relation.BEFORE else ""
        lines.append(f'  {ids[edge.source]} -> {ids[edge.target]} [label="{dot_text(_edge_label(edge))}"{style}];')
    actions = [action for action in _ORDER if any(node.action is action for node in graph.nodes)]
    if actions:
        lines += ["  subgraph cluster_legend {", '    label="Legend";']
        for action in actions:
            fill, border = _DOT_COLORS[action]
            lines.append(f'    legend_{_CLASSES[action][0]} [label="{_SYMBOLS[action]} {action.value}", '
                         f'fillcolor="{fill}", color="{border}"];')
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
