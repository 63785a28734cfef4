"""What Cloudflare would refuse at upload is a validation error at its line (issue 11, class 6):
part names it cannot carry, blank titles, non-ASCII binding names, and an empty secret that
would silently replace a live one."""
from __future__ import annotations

from pathlib import Path

import pytest

from deployer.kinds.registry import binding_kind
from deployer.manifest.load import load_manifest
from tests.test_validate import ACCOUNT, problems


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A manifest directory with src/worker.js, as the working directory."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.js").write_text("addEventListener('fetch', () => {})\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _modules_manifest(entry: str, *modules: str) -> str:
    listed = "".join(f"\n              - {module}" for module in modules)
    return f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          api:
            format: modules
            path: {entry}
            modules:{listed or ' []'}
    """


def _write(project: Path, *names: str) -> None:
    for name in names:
        (project / "src" / name).write_text("export default {}\n")


def test_a_module_whose_part_would_be_named_metadata_is_refused(project: Path) -> None:
    _write(project, "index.js", "metadata")
    assert problems(_modules_manifest("src/index.js", "src/metadata")) == [
        ("workers.yaml:8:9: scripts.api.modules[0]: 'src/metadata': its part would be named 'metadata', which is "
        "the upload's metadata part: rename the file"),
    ]


def test_an_entry_module_named_metadata_is_refused(project: Path) -> None:
    _write(project, "metadata")
    assert problems(_modules_manifest("src/metadata")) == [
        ("workers.yaml:6:11: scripts.api.path: 'src/metadata': the entry module's part would be named 'metadata', "
        "which is the upload's metadata part: rename the file"),
    ]


@pytest.mark.parametrize("name", ['say"hi".js', "two\nlines.js", "carriage\rreturn.js"],
                         ids=["quote", "lf", "cr"])
def test_a_part_name_with_a_quote_cr_or_lf_is_refused(project: Path, name: str) -> None:
    _write(project, "index.js", name)
    escaped = name.replace("\n", "\\n").replace("\r", "\\r").replace('"', '\\"')
    found = problems(_modules_manifest("src/index.js", f'"src/{escaped}"'))
    assert found == [
        (f"workers.yaml:8:9: scripts.api.modules[0]: {'src/' + name!r}: its part name would hold a '\"', CR or "
        "LF, which a multipart part name cannot carry: rename the file"),
    ]


def test_an_entry_part_name_with_a_newline_is_refused(project: Path) -> None:
    _write(project, "in\ndex.js")
    assert problems(_modules_manifest('"src/in\\ndex.js"')) == [
        ("workers.yaml:6:11: scripts.api.path: 'src/in\\ndex.js': the entry module's part name would hold a '\"', "
        "CR or LF, which a multipart part name cannot carry: rename the file"),
    ]


@pytest.mark.parametrize("title", ['"   "', '"\\t \\n"'], ids=["spaces", "whitespace"])
def test_a_namespace_title_made_only_of_spaces_is_refused(project: Path, title: str) -> None:
    shown = "'   '" if title == '"   "' else "'\\t \\n'"
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: {title}}}
        scripts: {{}}
    """) == [(f"workers.yaml:4:18: kv_namespaces.cache.title: {shown} is not a title of 1 to 512 characters, "
             "not only spaces")]


def test_a_title_that_fills_in_as_spaces_is_refused(project: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: "${{TITLE}}"}}
        scripts: {{}}
    """, {"TITLE": "  "}) == [
        ("workers.yaml:4:18: kv_namespaces.cache.title: '${TITLE}' expands to a value that is not a title of 1 "
        "to 512 characters, not only spaces")]


@pytest.mark.parametrize("name", ["café", "Ωmega", "ｆｕｌｌ"])
def test_a_unicode_binding_name_is_refused_though_javascript_allows_it(project: Path, name: str) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: {name}, text: x}}
    """) == [(f"workers.yaml:7:34: scripts.a.bindings[0].name: {name!r} is not a valid JavaScript identifier "
             "(Cloudflare takes ASCII letters, digits, '_' and '$' only)")]


def test_ascii_identifiers_with_dollar_and_underscore_are_accepted(project: Path) -> None:
    Path("workers.yaml").write_text(f"""\
version: 1
account_id: {ACCOUNT}
scripts:
  a:
    path: src/worker.js
    bindings:
      - {{type: plain_text, name: $cfg_1, text: x}}
      - {{type: plain_text, name: _Z9, text: y}}
""")
    script = load_manifest(Path("workers.yaml"), {}).scripts[0]
    assert [b.name for b in script.bindings] == ["$cfg_1", "_Z9"]


_SECRET = f"""\
    version: 1
    account_id: {ACCOUNT}
    scripts:
      a:
        path: src/worker.js
        bindings:
          - type: secret_text
            name: API_KEY
            text: "${{API_KEY}}"
"""
_EMPTY = ("is empty: a secret_text binding would replace the deployed value with \"\" (CI systems set a missing "
          "secret to the empty string); set it, or add allow_empty: true to the binding if empty is meant")


def test_a_secret_that_fills_in_empty_is_refused_at_its_line(project: Path) -> None:
    # What a CI system does with a secret it was never given: the live secret must not become "".
    assert problems(_SECRET, {"API_KEY": ""}) == [
        f"workers.yaml:9:15: scripts.a.bindings[0].text: '${{API_KEY}}' expands to a value that {_EMPTY}"]


def test_a_literal_empty_secret_is_refused_too(project: Path) -> None:
    assert problems(_SECRET.replace('"${API_KEY}"', '""'), {}) == [
        f"workers.yaml:9:15: scripts.a.bindings[0].text: '' {_EMPTY}"]


def test_allow_empty_lets_an_empty_secret_through_and_is_never_sent(project: Path) -> None:
    Path("workers.yaml").write_text(_SECRET.replace("    ", "", 1).replace("\n    ", "\n")
                                    + "        allow_empty: true\n")
    (binding,) = load_manifest(Path("workers.yaml"), {"API_KEY": ""}).scripts[0].bindings
    assert binding.secret is not None and binding.secret.value == ""
    # A manifest switch: not part of what Cloudflare receives, the state or the plan file records.
    sent = binding_kind("secret_text").metadata(binding, lambda section, key: None)
    assert sent == {"type": "secret_text", "name": "API_KEY", "text": ""}
    assert binding_kind("secret_text").planfile_record(binding) == {"type": "secret_text", "name": "API_KEY"}


def test_allow_empty_false_still_refuses_and_must_be_a_boolean(project: Path) -> None:
    text = _SECRET.replace('"${API_KEY}"', '""')
    assert problems(text + "            allow_empty: false\n") == [
        f"workers.yaml:9:15: scripts.a.bindings[0].text: '' {_EMPTY}"]
    assert problems(text + '            allow_empty: "yes"\n') == [
        f"workers.yaml:9:15: scripts.a.bindings[0].text: '' {_EMPTY}",
        "workers.yaml:10:22: scripts.a.bindings[0].allow_empty: expected a boolean, got a string",
    ]


def test_allow_empty_belongs_to_secret_text_only(project: Path) -> None:
    found = problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: A, text: "", allow_empty: true}}
    """)
    assert len(found) == 1 and "unexpected key 'allow_empty' in a plain_text binding" in found[0]
