"""The graph model is pure: nodes and edges in, the same Mermaid or DOT text out, every label escaped."""
from __future__ import annotations

import random

from deployer.models import Action
from deployer.plan.graph import (
    Edge,
    Graph,
    Node,
    Relation,
    around_changes,
    dot_text,
    make_graph,
    mermaid_text,
    render_dot,
    render_mermaid,
    summarise,
)

BINDS = Relation.BINDS


def script(name: str, action: Action | None = Action.NO_OP) -> Node:
    return Node(f"script:{name}", "script", name, action)


def namespace(name: str, action: Action | None = Action.NO_OP) -> Node:
    return Node(f"kv_namespace:{name}", "kv_namespace", name, action)


def binds(source: Node, target: Node) -> Edge:
    return Edge(source.id, target.id, BINDS)


# --- the model ---------------------------------------------------------------------------


def test_make_graph_sorts_and_keeps_each_node_and_edge_once() -> None:
    a, b, ns = script("a"), script("b"), namespace("ns")
    graph = make_graph([b, a, ns, a], [binds(ns, b), binds(ns, a), binds(ns, a)])
    assert graph == Graph(nodes=(ns, a, b), edges=(binds(ns, a), binds(ns, b)))


def test_make_graph_leaves_out_edges_to_nodes_it_does_not_hold() -> None:
    a, ns = script("a"), namespace("ns")
    assert make_graph([a], [binds(ns, a)]).edges == ()


def test_the_same_graph_in_any_order_gives_the_same_text() -> None:
    nodes = [script(f"s{i}", Action.UPDATE) for i in range(20)] + [namespace("ns", Action.CREATE)]
    edges = [binds(nodes[-1], node) for node in nodes[:-1]]
    expected = render_mermaid(make_graph(nodes, edges)), render_dot(make_graph(nodes, edges))
    shuffler = random.Random(7)
    for _ in range(5):
        shuffler.shuffle(nodes)
        shuffler.shuffle(edges)
        assert (render_mermaid(make_graph(nodes, edges)), render_dot(make_graph(nodes, edges))) == expected


# --- what a plan's diagram shows ---------------------------------------------------------


def test_unchanged_nodes_are_kept_only_where_they_connect_to_a_change() -> None:
    shared, lonely = namespace("shared"), namespace("lonely")
    changed, neighbour, other = script("changed", Action.UPDATE), script("neighbour"), script("other")
    graph = make_graph(
        [shared, lonely, changed, neighbour, other],
        [binds(shared, changed), binds(shared, neighbour), binds(lonely, other)],
    )
    # shared binds the changed script; neighbour is unchanged and only touches shared, so it goes.
    assert around_changes(graph) == make_graph([shared, changed], [binds(shared, changed)])


def test_a_graph_without_changes_reduces_to_nothing() -> None:
    ns = namespace("ns")
    assert around_changes(make_graph([ns, script("a")], [binds(ns, script("a"))])) == Graph()


def test_up_to_the_cap_the_graph_is_drawn_node_by_node() -> None:
    graph = make_graph([script(f"s{i:03}", Action.CREATE) for i in range(150)], [])
    assert summarise(graph) is graph


def test_past_the_cap_one_node_per_kind_and_action_with_counted_edges_and_a_note() -> None:
    ns = namespace("cache", Action.CREATE)
    created = [script(f"new{i:03}", Action.CREATE) for i in range(140)]
    updated = [script(f"old{i:03}", Action.UPDATE) for i in range(10)]
    gone = script("gone", Action.DELETE)
    graph = make_graph([ns, *created, *updated, gone], [binds(ns, s) for s in created[:30] + updated[:2]])
    assert render_mermaid(summarise(graph)) == (
        "flowchart LR\n"
        '  note["152 resources, more than 150#58; one box per kind and action"]\n'
        '  n1[("+ kv_namespace<br>cache")]\n'
        '  n2["+ script<br>140 to create"]\n'
        '  n3["~ script<br>10 to update"]\n'
        '  n4["- script<br>gone"]\n'
        '  n1 -->|"binds (30)"| n2\n'
        '  n1 -->|"binds (2)"| n3\n'
        '  subgraph legend["Legend"]\n'
        "    direction LR\n"
        '    legend_create["+ create"]\n'
        '    legend_update["~ update"]\n'
        '    legend_delete["- delete"]\n'
        "  end\n"
        "  classDef create fill:#dafbe1,stroke:#1a7f37,color:#0f5323\n"
        "  class n1,n2,legend_create create\n"
        "  classDef update fill:#fff8c5,stroke:#9a6700,color:#4d2d00\n"
        "  class n3,legend_update update\n"
        "  classDef delete fill:#ffebe9,stroke:#cf222e,color:#82071e\n"
        "  class n4,legend_delete delete\n"
        "  classDef note fill:#ffffff,stroke:#d0d7de,color:#57606a\n"
        "  class note note\n"
    )


def test_a_summary_of_a_manifest_graph_counts_every_resource_of_a_kind() -> None:
    graph = make_graph([script(f"s{i:03}", None) for i in range(151)], [])
    (node,) = summarise(graph).nodes
    assert node == Node("script:*:all", "script", "151 in all", None)


# --- Mermaid ------------------------------------------------------------------------------


def test_mermaid_draws_each_action_with_its_style_a_legend_and_dotted_order_edges() -> None:
    ns, kept = namespace("cache", Action.UPDATE), namespace("old", Action.FORGET)
    api, web, gone = script("api", Action.CREATE), script("web"), script("gone", Action.DELETE)
    graph = make_graph(
        [ns, kept, api, web, gone],
        [binds(ns, api), binds(ns, web), Edge(api.id, web.id, Relation.BEFORE), binds(kept, gone)],
    )
    assert render_mermaid(graph) == (
        "flowchart LR\n"
        '  n1[("~ kv_namespace<br>cache")]\n'
        '  n2[("! kv_namespace<br>old")]\n'
        '  n3["+ script<br>api"]\n'
        '  n4["- script<br>gone"]\n'
        '  n5["= script<br>web"]\n'
        '  n1 -->|"binds"| n3\n'
        '  n1 -->|"binds"| n5\n'
        '  n2 -->|"binds"| n4\n'
        '  n3 -.->|"before"| n5\n'
        '  subgraph legend["Legend"]\n'
        "    direction LR\n"
        '    legend_create["+ create"]\n'
        '    legend_update["~ update"]\n'
        '    legend_delete["- delete"]\n'
        '    legend_forget["! forget"]\n'
        '    legend_noop["= no-op"]\n'
        "  end\n"
        "  classDef create fill:#dafbe1,stroke:#1a7f37,color:#0f5323\n"
        "  class n3,legend_create create\n"
        "  classDef update fill:#fff8c5,stroke:#9a6700,color:#4d2d00\n"
        "  class n1,legend_update update\n"
        "  classDef delete fill:#ffebe9,stroke:#cf222e,color:#82071e\n"
        "  class n4,legend_delete delete\n"
        "  classDef forget fill:#fbefff,stroke:#8250df,color:#512a97\n"
        "  class n2,legend_forget forget\n"
        "  classDef noop fill:#f6f8fa,stroke:#8c959f,color:#57606a,stroke-dasharray:4 3\n"
        "  class n5,legend_noop noop\n"
    )


def test_mermaid_without_actions_has_no_styles_and_no_legend() -> None:
    ns, api = namespace("cache", None), script("api", None)
    assert render_mermaid(make_graph([ns, api], [binds(ns, api)])) == (
        "flowchart LR\n"
        '  n1[("kv_namespace<br>cache")]\n'
        '  n2["script<br>api"]\n'
        '  n1 -->|"binds"| n2\n'
    )


def test_kinds_get_shapes_and_an_unknown_kind_is_a_box() -> None:
    nodes = [Node("crons:api", "crons", "*/5 * * * *"), Node("route:r", "route", "shop.example.com/api/*"),
             Node("thing:x", "thing", "x")]
    assert render_mermaid(make_graph(nodes, [])).splitlines()[1:] == [
        '  n1{{"crons<br>*/5 * * * *"}}',
        '  n2(["route<br>shop.example.com/api/*"])',
        '  n3["thing<br>x"]',
    ]


def test_mermaid_text_writes_every_meaningful_character_as_an_entity_code() -> None:
    assert mermaid_text('say "hi"') == "say #quot;hi#quot;"
    assert mermaid_text("[a] {b} |c| <d> `e` #f; &g; %%{init}%% $$h$$ i:j; \\k") == (
        "#91;a#93; #123;b#125; #124;c#124; #60;d#62; #96;e#96; #35;f#59; #38;g#59; "
        "#37;#37;#123;init#125;#37;#37; #36;#36;h#36;#36; i#58;j#59; #92;k"
    )
    # Mermaid turns #NN; into &#NN; itself, so an entity written by the user stays text.
    assert mermaid_text("#quot; &quot;") == "#35;quot#59; #38;quot#59;"
    assert mermaid_text("naïve ☃") == "na#239;ve #9731;"
    assert mermaid_text("shop.example.com/api/* (v2) a-b_c, d=e? f! g@h ~i ^j 'k' +l") == (
        "shop.example.com/api/* (v2) a-b_c, d=e? f! g@h ~i ^j 'k' +l"
    )


def test_mermaid_text_is_one_line() -> None:
    assert mermaid_text("one\ntwo\r\nthree\tfour\u2028five") == "one two  three four five"


def test_node_labels_are_cut_at_80_characters() -> None:
    fits, cut = script("x" * 80, None), script("y" * 81, None)
    assert render_mermaid(make_graph([fits, cut], [])).splitlines()[1:] == [
        f'  n1["script<br>{"x" * 80}"]',
        f'  n2["script<br>{"y" * 79}#8230;"]',
    ]
    assert render_dot(make_graph([cut], [])).splitlines()[3] == f'  n1 [label="script\\n{"y" * 79}…"];'


def test_a_hostile_title_stays_inside_its_own_label() -> None:
    hostile = 'x"]\n  evil["owned"] --> n1\n  click n1 "https://example.com"\n%%{init: {"theme": "dark"}}%%\n```'
    lines = render_mermaid(make_graph([namespace(hostile, Action.CREATE)], [])).splitlines()
    assert lines[:2] == [
        "flowchart LR",
        (
            '  n1[("+ kv_namespace<br>x#quot;#93;   evil#91;#quot;owned#quot;#93; --#62; n1   click n1 '
            '#quot;https#58;//example.com#quot; #37;#37;#123;init#58; #123;#quot;theme#quot;#58; #8230;")]'
        ),
    ]
    assert all(not line.startswith(("  evil", "  click", "%%", "```")) for line in lines)


# --- DOT ----------------------------------------------------------------------------------


def test_dot_draws_the_same_graph_for_graphviz() -> None:
    ns, api, web = namespace("cache", Action.CREATE), script("api", Action.UPDATE), script("web")
    graph = make_graph([ns, api, web], [binds(ns, api), binds(ns, web), Edge(api.id, web.id, Relation.BEFORE)])
    assert render_dot(graph) == (
        "digraph deployer {\n"
        "  rankdir=LR;\n"
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];\n'
        '  n1 [label="+ kv_namespace\\ncache", shape=cylinder, fillcolor="#dafbe1", color="#1a7f37"];\n'
        '  n2 [label="~ script\\napi", fillcolor="#fff8c5", color="#9a6700"];\n'
        '  n3 [label="= script\\nweb", fillcolor="#f6f8fa", color="#8c959f", style="rounded,filled,dashed"];\n'
        '  n1 -> n2 [label="binds"];\n'
        '  n1 -> n3 [label="binds"];\n'
        '  n2 -> n3 [label="before", style=dashed];\n'
        "  subgraph cluster_legend {\n"
        '    label="Legend";\n'
        '    legend_create [label="+ create", fillcolor="#dafbe1", color="#1a7f37"];\n'
        '    legend_update [label="~ update", fillcolor="#fff8c5", color="#9a6700"];\n'
        '    legend_noop [label="= no-op", fillcolor="#f6f8fa", color="#8c959f"];\n'
        "  }\n"
        "}\n"
    )


def test_dot_puts_a_summary_note_on_the_graph() -> None:
    graph = summarise(make_graph([script(f"s{i:03}", None) for i in range(151)], []))
    assert render_dot(graph).splitlines()[3:6] == [
        '  label="151 resources, more than 150: one box per kind and action";',
        "  labelloc=t;",
        '  n1 [label="script\\n151 in all"];',
    ]


def test_dot_text_escapes_quotes_and_backslashes_so_labels_cannot_break_out() -> None:
    assert dot_text('a"] -> evil [label="x') == 'a\\"] -> evil [label=\\"x'
    assert dot_text("back\\slash \\N\nnext") == "back\\\\slash \\\\N next"
