"""Plans and manifests become graphs (pure: make_plan over in-memory manifests and states), and the
markdown plan ends with the diagram."""
from __future__ import annotations

from deployer.models import (
    Action,
    ScriptState,
)
from deployer.plan.diagram import graph_of_manifest, graph_of_plan, markdown_section
from deployer.plan.graph import Edge, Node, Relation, make_graph
from deployer.plan.planner import make_plan
from deployer.plan.render import render_markdown
from tests.factories import (
    namespace_state,
    namespace,

    deployed_kv,
    NAMESPACE_ID,
    kv,
    make_manifest,
    make_script,
    make_state,
    plain,
    recorded,
    secret,
)

CACHE = namespace("cache", "my-app-cache")
CACHE_ID = "11111111111111111111111111111111"


def binds(namespace: str, script: str) -> Edge:
    return Edge(f"kv_namespace:{namespace}", f"script:{script}", Relation.BINDS)


def test_a_namespace_created_by_the_plan_binds_the_scripts_that_name_it() -> None:
    api = make_script("api", bindings=(kv("CACHE", namespace="cache"), plain("ENV", "prod")))
    web = make_script("web", bindings=(kv("SEED"),))  # a literal id of a namespace this manifest does not own
    manifest = make_manifest(api, web, namespaces=(CACHE,))
    assert graph_of_plan(make_plan(manifest, make_state(serial=0)), manifest) == make_graph(
        [
            Node("kv_namespace:cache", "kv_namespace", "cache (my-app-cache)", Action.CREATE),
            Node("script:api", "script", "api", Action.CREATE),
            Node("script:web", "script", "web", Action.CREATE),
        ],
        [binds("cache", "api")],
    )


def test_a_literal_namespace_id_binds_when_the_plan_holds_that_namespace() -> None:
    api = make_script("api", bindings=(kv("CACHE", namespace_id=CACHE_ID),))
    manifest = make_manifest(api, namespaces=(CACHE,))
    state = make_state(namespaces=(namespace_state("cache", "my-app-cache", CACHE_ID),))
    assert graph_of_plan(make_plan(manifest, state), manifest).edges == (binds("cache", "api"),)


def test_a_deleted_script_is_drawn_with_the_namespace_its_state_recorded() -> None:
    manifest = make_manifest()
    state = make_state(
        ScriptState("gone", "sha", (deployed_kv("OLD", CACHE_ID),)),
        namespaces=(namespace_state("old", "old-title", CACHE_ID),),
    )
    assert graph_of_plan(make_plan(manifest, state), manifest) == make_graph(
        [
            Node("kv_namespace:old", "kv_namespace", "old (old-title)", Action.FORGET),
            Node("script:gone", "script", "gone", Action.DELETE),
        ],
        [binds("old", "gone")],
    )


def test_without_the_manifest_only_edges_to_known_ids_are_drawn() -> None:
    api = make_script("api", bindings=(kv("CACHE", namespace="cache"),))
    manifest = make_manifest(api, namespaces=(CACHE,))
    state = make_state(recorded(api, namespace_ids={"cache": CACHE_ID}),
                       namespaces=(namespace_state("cache", "my-app-cache", CACHE_ID),))
    assert graph_of_plan(make_plan(manifest, state)).edges == (binds("cache", "api"),)
    created = make_plan(manifest, make_state(serial=0))
    assert graph_of_plan(created).edges == ()
    assert graph_of_plan(created, manifest).edges == (binds("cache", "api"),)


def test_the_manifest_graph_has_every_resource_and_no_action() -> None:
    api = make_script("api", bindings=(kv("CACHE", namespace="cache"),))
    assert graph_of_manifest(make_manifest(api, make_script("web"), namespaces=(CACHE,))) == make_graph(
        [
            Node("kv_namespace:cache", "kv_namespace", "cache (my-app-cache)"),
            Node("script:api", "script", "api"),
            Node("script:web", "script", "web"),
        ],
        [binds("cache", "api")],
    )


def test_a_plan_of_500_unchanged_scripts_and_one_change_draws_the_change_and_its_namespace() -> None:
    cache = namespace("cache", "my-app-cache")
    scripts = [make_script(f"s{i:03}", bindings=(kv("CACHE", namespace="cache"),)) for i in range(500)]
    state = make_state(
        *(recorded(s, namespace_ids={"cache": CACHE_ID}) for s in scripts),
        namespaces=(namespace_state("cache", "my-app-cache", CACHE_ID),),
    )
    scripts[42] = make_script("s042", content="// v2", bindings=(kv("CACHE", namespace="cache"),))
    manifest = make_manifest(*scripts, namespaces=(cache,))
    assert markdown_section(make_plan(manifest, state), manifest) == (
        "\n"
        "<details><summary>Dependency graph</summary>\n"
        "\n"
        "```mermaid\n"
        "flowchart LR\n"
        '  n1[("= kv_namespace<br>cache (my-app-cache)")]\n'
        '  n2["~ script<br>s042"]\n'
        '  n1 -->|"binds"| n2\n'
        '  subgraph legend["Legend"]\n'
        "    direction LR\n"
        '    legend_update["~ update"]\n'
        '    legend_noop["= no-op"]\n'
        "  end\n"
        "  classDef update fill:#fff8c5,stroke:#9a6700,color:#4d2d00\n"
        "  class n2,legend_update update\n"
        "  classDef noop fill:#f6f8fa,stroke:#8c959f,color:#57606a,stroke-dasharray:4 3\n"
        "  class n1,legend_noop noop\n"
        "```\n"
        "\n"
        "</details>\n"
    )


def test_a_rename_that_touches_200_scripts_is_summarised_with_a_note() -> None:
    scripts = [make_script(f"s{i:03}", bindings=(kv("CACHE", namespace="cache"),)) for i in range(200)]
    state = make_state(
        *(recorded(s, namespace_ids={"cache": CACHE_ID}) for s in scripts),
        namespaces=(namespace_state("cache", "old-title", CACHE_ID),),
    )
    manifest = make_manifest(*scripts, namespaces=(CACHE,))
    section = markdown_section(make_plan(manifest, state), manifest)
    assert section.splitlines()[5:10] == [
        '  note["201 resources, more than 150#58; one box per kind and action"]',
        '  n1[("~ kv_namespace<br>cache (my-app-cache)")]',
        '  n2["= script<br>200 unchanged"]',
        '  n1 -->|"binds (200)"| n2',
        '  subgraph legend["Legend"]',
    ]


def test_a_plan_without_changes_has_no_diagram() -> None:
    script = make_script("api")
    manifest = make_manifest(script)
    assert markdown_section(make_plan(manifest, make_state(recorded(script))), manifest) == ""


def test_the_diagram_names_resources_and_never_shows_binding_values() -> None:
    api = make_script("api", bindings=(secret("API_KEY", "canary-secret"), plain("GREETING", "canary-text")))
    manifest = make_manifest(api)
    section = markdown_section(make_plan(manifest, make_state(serial=0)), manifest)
    assert "canary" not in section
    assert "API_KEY" not in section


def test_the_markdown_plan_ends_with_the_collapsed_diagram() -> None:
    api = make_script("api", bindings=(kv("CACHE", namespace="cache"), kv("SEED", NAMESPACE_ID)))
    manifest = make_manifest(api, namespaces=(CACHE,))
    plan = make_plan(manifest, make_state(serial=0))
    markdown = render_markdown(plan, manifest)
    table, diagram = markdown.split("\n<details>")
    assert table.endswith("| + create | script | `api` | + binding CACHE: kv_namespace (known after apply)"
                          f"<br>+ binding SEED: kv_namespace {NAMESPACE_ID} |\n")
    assert "\n<details>" + diagram == markdown_section(plan, manifest)
    assert diagram.endswith("```\n\n</details>\n")
