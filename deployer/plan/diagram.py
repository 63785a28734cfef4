"""The plan and the manifest as a ``Graph`` (``plan/graph.py``), and the plan's diagram section
of a markdown comment. Nodes come from the plan's changes, whatever their kind; only
``_dependencies`` knows which kinds depend on which."""
from __future__ import annotations

from collections.abc import Iterator

from deployer.models import (
    Action,
    BindingType,
    Change,
    KvNamespaceBinding,
    Manifest,
    Plan,
    ResourceType,
    State,
)
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
    nodes = (Node(node_id(c.type.value, c.name), c.type.value, _label(c), c.action) for c in plan.changes)
    return make_graph(nodes, _dependencies(plan, manifest))


def graph_of_manifest(manifest: Manifest) -> Graph:
    """Everything the manifest declares and how it depends on each other, with no action: the
    plan of a first deploy (an empty state, so nothing is read), drawn without its actions."""
    from deployer.plan.planner import make_plan

    planned = graph_of_plan(make_plan(manifest, State()), manifest)
    return make_graph((Node(n.id, n.kind, n.label) for n in planned.nodes), planned.edges)


def _label(change: Change) -> str:
    return f"{change.name} ({change.title})" if change.title and change.title != change.name else change.name


def _dependencies(plan: Plan, manifest: Manifest | None) -> Iterator[Edge]:
    """Today's one dependency: a kv_namespace binds each script whose binding names it, by the
    manifest key (``namespace:``) or by an id (a literal ``namespace_id``, one the plan resolved,
    or the one a deleted script's state recorded) equal to a namespace's id in the plan. The
    registry of kinds feeds its own edges here ("routes to", "consumes", "before")."""
    namespace_keys = {
        c.namespace_id: c.name for c in plan.changes if c.type is ResourceType.KV_NAMESPACE and c.namespace_id
    }

    def binds(key: str | None, script: str) -> Iterator[Edge]:
        if key is not None:
            yield Edge(node_id(ResourceType.KV_NAMESPACE.value, key), node_id(ResourceType.SCRIPT.value, script),
                       Relation.BINDS)

    for script in manifest.scripts if manifest is not None else ():
        for binding in script.bindings:
            if isinstance(binding, KvNamespaceBinding):
                yield from binds(binding.namespace or namespace_keys.get(binding.namespace_id or ""), script.name)
    for change in plan.changes:
        if change.type is ResourceType.SCRIPT:
            # A deleted script no longer binds anything; draw what it used until now.
            used = change.previous_bindings if change.action is Action.DELETE else change.bindings
            for deployed in used:
                if deployed.type is BindingType.KV_NAMESPACE:
                    yield from binds(namespace_keys.get(deployed.namespace_id or ""), change.name)


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
