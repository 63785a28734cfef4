"""deployer graph (the manifest as a picture, no state, no network) and the graph at the end of
plan --format markdown, run through the real CLI on a copy of sample-project/."""
from __future__ import annotations

import json
from pathlib import Path

from tests.cli_runner import run
from tests.factories import sample_with_triggers, write_project

SAMPLE_MERMAID = (
    "flowchart LR\n"
    '  n1[("kv_namespace<br>counts (sample-project-counts)")]\n'
    '  n2["script<br>hello-modules"]\n'
    '  n3["script<br>my-worker"]\n'
    '  n4["script<br>visit-counter"]\n'
    '  n1 -->|"binds"| n4\n'
)


def test_graph_prints_the_sample_project_as_mermaid_without_state_or_credentials(project: Path) -> None:
    result = run("graph", cwd=project)
    assert result.stdout == SAMPLE_MERMAID
    assert result.stderr == ""
    assert not (project / ".deployer").exists()


def test_graph_prints_dot_for_graphviz(project: Path) -> None:
    assert run("graph", "--format", "dot", cwd=project).stdout == (
        "digraph deployer {\n"
        "  rankdir=LR;\n"
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff"];\n'
        '  n1 [label="kv_namespace\\ncounts (sample-project-counts)", shape=cylinder];\n'
        '  n2 [label="script\\nhello-modules"];\n'
        '  n3 [label="script\\nmy-worker"];\n'
        '  n4 [label="script\\nvisit-counter"];\n'
        '  n1 -> n4 [label="binds"];\n'
        "}\n"
    )


def test_graph_of_an_environment_shows_its_names(project: Path, tmp_path: Path) -> None:
    result = run("graph", "-f", str(project / "workers.yaml"), "--env", "staging", cwd=tmp_path)
    assert '  n1[("kv_namespace<br>counts (sample-project-counts-staging)")]\n' in result.stdout
    assert '  n4["script<br>visit-counter-staging"]\n' in result.stdout


def test_graph_of_a_large_manifest_is_summarised_in_mermaid_but_whole_in_dot(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, [f"s{i:03}" for i in range(151)], namespace="store-title")
    mermaid = run("graph", "-f", str(manifest)).stdout
    assert mermaid == (
        "flowchart LR\n"
        '  note["152 resources, more than 150#58; one box per kind and action"]\n'
        '  n1[("kv_namespace<br>store (store-title)")]\n'
        '  n2["script<br>151 in all"]\n'
        '  n1 -->|"binds"| n2\n'
        "  classDef note fill:#ffffff,stroke:#d0d7de,color:#57606a\n"
        "  class note note\n"
    )
    dot = run("graph", "-f", str(manifest), "--format", "dot").stdout
    assert dot.count('[label="script\\n') == 151


def test_graph_of_an_invalid_manifest_is_an_error_naming_the_problem(tmp_path: Path) -> None:
    (tmp_path / "workers.yaml").write_text("version: 1\naccount_id: ${NOT_SET_ANYWHERE}\nscripts: {}\n")
    result = run("graph", cwd=tmp_path, expect=1)
    assert result.stdout == ""
    assert "NOT_SET_ANYWHERE" in result.stderr


def test_graph_refuses_an_unknown_format(project: Path) -> None:
    result = run("graph", "--format", "svg", cwd=project, expect=1)
    assert "'svg' is not one of 'mermaid', 'dot'" in result.stderr


def test_markdown_plan_of_the_sample_project_ends_with_its_graph(project: Path) -> None:
    markdown = run("plan", "--format", "markdown", cwd=project).stdout
    assert markdown.endswith(
        "<details><summary>Dependency graph</summary>\n"
        "\n"
        "```mermaid\n"
        "flowchart LR\n"
        '  n1[("+ kv_namespace<br>counts (sample-project-counts)")]\n'
        '  n2["+ script<br>hello-modules"]\n'
        '  n3["+ script<br>my-worker"]\n'
        '  n4["+ script<br>visit-counter"]\n'
        '  n1 -->|"binds"| n4\n'
        '  subgraph legend["Legend"]\n'
        "    direction LR\n"
        '    legend_create["+ create"]\n'
        "  end\n"
        "  classDef create fill:#dafbe1,stroke:#1a7f37,color:#0f5323\n"
        "  class n1,n2,n3,n4,legend_create create\n"
        "```\n"
        "\n"
        "</details>\n"
    )


def test_text_and_json_plans_carry_no_graph(project: Path) -> None:
    text = run("plan", cwd=project).stdout
    assert "mermaid" not in text and "details" not in text
    assert "graph" not in json.loads(run("plan", "--format", "json", cwd=project).stdout)


def test_the_readme_example_is_the_sample_projects_plan_graph(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### The plan as a picture", 1)[1]
    example = section.split("```mermaid\n", 1)[1].split("```\n", 1)[0]
    markdown = run("plan", "--format", "markdown", cwd=sample_with_triggers(tmp_path)).stdout
    assert f"```mermaid\n{example}```\n" in markdown
