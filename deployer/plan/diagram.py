"""The plan and the manifest as a ``Graph`` (``plan/graph.py``), and the plan's diagram section
of a markdown comment. Nodes come from the plan's changes, whatever their kind; only
``_dependencies`` knows which kinds depend on which."""
from __future__ import annotations

from collections.abc import Iterator

from deployer.kinds.registry import binding_kind
from deployer.kinds.registry import resource_kind_of_section
from deployer.models import SCRIPT, Action, Change, Manifest, Plan, State
from deployer.plan.graph import (
    Edge,
    Graph,
    Node,
    Relation,
    around_changes,
    make_graph,
    render_mermaid,
    summarise,
)


def node_id(kind: str, name: str) -> str:
    """A resource's id in a graph: its kind and its name (the plan's ``type`` and ``name``)."""
    return f"{kind}:{name}"


def graph_of_plan(plan: Plan, manifest: Manifest | None = None) -> Graph:
    """Every change of ``plan`` as a node styled by its action, and the edges between them.
    ``manifest`` (the one planned) supplies references to resources this plan creates, whose ids
    are not known yet; without it those edges are missing. All nodes: see ``around_changes``."""
    nodes = (Node(node_id(c.type, c.name), c.type, _label(c), c.action) for c in plan.changes)
    return make_graph(nodes, _dependencies(plan, manifest))


def graph_of_manifest(manifest: Manifest) -> Graph:
    """Everything the manifest declares and how it depends on each other, with no action: the
    plan of a first deploy (an empty state, so nothing is read), drawn without its actions."""
    from deployer.plan.planner import make_plan

    planned = graph_of_plan(make_plan(manifest, State()), manifest)
    return make_graph((Node(n.id, n.kind, n.label) for n in planned.nodes), planned.edges)


def _label(change: Change) -> str:
    name = change.resource_name
    return f"{change.name} ({name})" if name and name != change.name else change.name


def _dependencies(plan: Plan, manifest: Manifest | None) -> Iterator[Edge]:
    """A resource binds each script whose binding names it: by the manifest key of a reference
    (``namespace: cache``), or by an id (a literal, one the plan resolved, or the one a deleted
    script's state recorded) equal to a resource's id in the plan. An attachment routes to
    its script."""
    by_id = {c.resource_id: c for c in plan.changes if c.type != SCRIPT and c.resource_id}
    by_key = {(c.type, c.name): c for c in plan.changes if c.type != SCRIPT}

    def binds(resource: Change | None, script: str) -> Iterator[Edge]:
        if resource is not None:
            yield Edge(node_id(resource.type, resource.name), node_id(SCRIPT, script),
                       Relation.BINDS)

    for script in manifest.scripts if manifest is not None else ():
        for binding in script.bindings:
            reference = binding_kind(binding.type).reference
            key = binding.get(reference.key) if reference is not None else None
            if reference is not None and key is not None:
                kind = resource_kind_of_section(reference.section)
                if kind is not None:
                    yield from binds(by_key.get((kind.type, str(key))), script.name)
    for change in plan.changes:
        attached = change.attachment or change.previous_attachment
        if attached is not None and attached.script:
            # A route, domain, cron set or queue consumer sends its requests (or messages) to its script.
            yield Edge(node_id(change.type, change.name), node_id(SCRIPT, attached.script), Relation.ROUTES_TO)
        if change.type == SCRIPT:
            # A deleted script no longer binds anything; draw what it used until now.
            used = change.previous_bindings if change.action is Action.DELETE else change.bindings
            for deployed in used:
                for _, value in deployed.values:
                    if isinstance(value, str):
                        yield from binds(by_id.get(value), change.name)


def markdown_section(plan: Plan, manifest: Manifest | None = None) -> str:
    """A collapsible ``<details>`` block with the plan's Mermaid diagram (what changes, and the
    unchanged resources that connect to it; summarised past 150 nodes), or "" when nothing
    changes."""
    graph = summarise(around_changes(graph_of_plan(plan, manifest)))
    if not graph.nodes:
        return ""
    return (
        "\n<details><summary>Dependency graph</summary>\n\n"
        f"```mermaid\n{render_mermaid(graph)}```\n\n"
        "</details>\n"
    )
