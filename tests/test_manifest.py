"""load_manifest builds exactly the Manifest the file describes."""
from __future__ import annotations

import gc
import hashlib
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from deployer.manifest import yaml_nodes as manifest_module
from deployer.manifest.load import load_manifest, sha256_file
from tests.factories import kv, namespace, plain, secret
from deployer.models import (
    Manifest,
    Script,
    Secret,
)

ACCOUNT = "0f2ac74b498b48028cb68387c421e279"
WORKER_JS = b"addEventListener('fetch', e => e.respondWith(new Response('hi')))\n"

CONTRACT_EXAMPLE = """\
# yaml-language-server: $schema=../schemas/workers.schema.json
version: 1
account_id: ${CLOUDFLARE_ACCOUNT_ID}
kv_namespaces:
  zeta:
    title: my-app-zeta
  cache:
    title: my-app-cache
scripts:
  my-worker:
    path: src/worker.js
    bindings:
      - type: kv_namespace
        name: myNamespace
        namespace_id: 0f2ac74b498b48028cb68387c421e279
      - type: kv_namespace
        name: CACHE
        namespace: cache
      - type: plain_text
        name: ENVIRONMENT
        text: production
      - type: secret_text
        name: API_KEY
        text: ${API_KEY}
  another:
    path: ./src/../src/other.js
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.js").write_bytes(WORKER_JS)
    (tmp_path / "src" / "other.js").write_bytes(b"// other\n")
    return tmp_path


def write(project: Path, text: str) -> Path:
    path = project / "workers.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_valid_manifest_builds_exactly_the_expected_manifest(project: Path) -> None:
    path = write(project, CONTRACT_EXAMPLE)
    environ = {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT, "API_KEY": "s3cr3t"}

    manifest = load_manifest(path, environ, environment="staging")

    assert manifest == Manifest(
        path=path,
        account_id=ACCOUNT,
        zone_id=None,
        resources=(namespace("zeta", "my-app-zeta"), namespace("cache", "my-app-cache")),
        scripts=(
            Script(
                name="my-worker",
                path=(project / "src" / "worker.js").resolve(),
                content_sha256=hashlib.sha256(WORKER_JS).hexdigest(),
                bindings=(
                    kv("myNamespace", namespace_id="0f2ac74b498b48028cb68387c421e279"),
                    kv("CACHE", namespace="cache"),
                    plain("ENVIRONMENT", "production"),
                    secret("API_KEY", "s3cr3t"),
                ),
                size=len(WORKER_JS),
            ),
            Script(
                name="another",
                path=(project / "src" / "other.js").resolve(),
                content_sha256=hashlib.sha256(b"// other\n").hexdigest(),
                size=len(b"// other\n"),
            ),
        ),
        environment="staging",
    )


def test_loading_a_manifest_makes_no_reference_cycles(project: Path) -> None:
    """The CLI runs without the cyclic garbage collector until apply sends (``console()``): a
    cycle made while loading (a closure calling itself, say) would keep the whole YAML node
    tree alive to the end of the run: +3 MB on a 5,000-script plan."""
    manifest_file = write(project, CONTRACT_EXAMPLE)
    environ = {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT, "API_KEY": "s3cret"}
    load_manifest(manifest_file, environ)  # imports done: a class made at import is not this test's business
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        load_manifest(manifest_file, environ)
        gc.collect()
        left = sorted({type(thing).__qualname__ for thing in gc.garbage})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def test_secret_text_is_wrapped_and_masked(project: Path) -> None:
    path = write(project, CONTRACT_EXAMPLE)
    manifest = load_manifest(path, {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT, "API_KEY": "s3cr3t"})
    secret = manifest.scripts[0].bindings[3]
    assert secret.type == "secret_text"
    assert secret.secret == Secret("s3cr3t")
    assert "s3cr3t" not in repr(manifest)


def test_zone_manifest_with_one_script_loads(project: Path) -> None:
    path = write(project, f"""\
        version: 1
        zone_id: {ACCOUNT}
        scripts:
          only: {{path: src/worker.js}}
    """)
    manifest = load_manifest(path, {})
    assert (manifest.account_id, manifest.zone_id) == (None, ACCOUNT)
    assert [s.name for s in manifest.scripts] == ["only"]


def test_content_hash_streams_files_larger_than_one_chunk(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # a little over 3 MiB
    (tmp_path / "big.js").write_bytes(data)
    assert sha256_file(tmp_path / "big.js") == hashlib.sha256(data).hexdigest()


def test_double_dollar_escapes_a_placeholder(project: Path) -> None:
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          w:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: TEMPLATE, text: "literal $${{PRICE}}, filled ${{PRICE}}, $5"}}
    """)
    binding = load_manifest(path, {"PRICE": "9"}).scripts[0].bindings[0]
    assert binding == plain("TEMPLATE", "literal ${PRICE}, filled 9, $5")


def test_several_placeholders_in_one_string_are_all_filled(project: Path) -> None:
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        kv_namespaces:
          cache: {{title: "${{APP}}-${{ENV:-dev}}-cache"}}
        scripts:
          worker-${{ENV}}:
            path: src/${{FILE}}
            bindings:
              - {{type: plain_text, name: URL, text: "https://${{HOST}}:${{PORT:-443}}/${{ENV}}"}}
    """)
    manifest = load_manifest(path, {"APP": "shop", "ENV": "prod", "FILE": "worker.js", "HOST": "x.example"})
    assert manifest.resources == (namespace("cache", "shop-prod-cache"),)
    assert manifest.scripts[0].name == "worker-prod"
    assert manifest.scripts[0].path == (project / "src" / "worker.js").resolve()
    assert manifest.scripts[0].bindings == (plain("URL", "https://x.example:443/prod"),)


def test_empty_variable_is_set_but_empty(project: Path) -> None:
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          w:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: SUFFIX, text: "${{SUFFIX}}"}}
    """)
    assert load_manifest(path, {"SUFFIX": ""}).scripts[0].bindings == (plain("SUFFIX", ""),)


def test_aliases_share_values(project: Path) -> None:
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings: &common
              - {{type: plain_text, name: MODE, text: fast}}
          b:
            path: src/other.js
            bindings: *common
    """)
    manifest = load_manifest(path, {})
    assert manifest.scripts[0].bindings == manifest.scripts[1].bindings == (plain("MODE", "fast"),)


def test_c_loader_is_used_when_libyaml_is_available() -> None:
    if yaml.__with_libyaml__:
        assert issubclass(manifest_module.LOADER, yaml._yaml.CParser)  # libyaml parses; PyYAML composes
    else:
        assert manifest_module.LOADER is yaml.SafeLoader


def test_pure_python_loader_builds_the_same_manifest(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(project, CONTRACT_EXAMPLE)
    environ = {"CLOUDFLARE_ACCOUNT_ID": ACCOUNT, "API_KEY": "k"}
    with_c = load_manifest(path, environ)
    monkeypatch.setattr(manifest_module, "LOADER", manifest_module.PythonLoader)
    assert load_manifest(path, environ) == with_c


@given(st.text(alphabet=st.characters(codec="utf-8")).filter(lambda text: "${" not in text))
def test_text_without_a_placeholder_is_never_changed(text: str) -> None:
    parser = manifest_module.Parser("workers.yaml", {})
    node = manifest_module.ScalarNode("tag:yaml.org,2002:str", text, 0, 0)
    parser._fill(node, ())
    assert parser.filled[id(node)] == text
    assert parser.diagnostics == []


def test_a_date_like_text_is_read_as_a_string(project: Path) -> None:
    # YAML tags an unquoted 2024-01-01 as a timestamp; the manifest wants the text as written.
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          my-worker:
            path: src/worker.js
            bindings:
              - type: plain_text
                name: DAY
                text: 2024-01-01
    """)
    (script,) = load_manifest(path, {}).scripts
    assert script.bindings == (plain("DAY", "2024-01-01"),)


def test_modules_script_names_parts_relative_to_the_entry_directory(project: Path) -> None:
    (project / "src" / "lib").mkdir()
    (project / "src" / "lib" / "util.mjs").write_bytes(b"export const x = 1\n")
    (project / "src" / "add.wasm").write_bytes(b"\0asm")
    (project / "src" / "page.html").write_bytes(b"<p>hi</p>")
    path = write(project, f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          mods:
            format: modules
            path: src/worker.js
            modules:
              - src/lib/util.mjs
              - src/add.wasm
              - src/page.html
              - {{path: src/other.js, type: application/javascript}}
            compatibility_date: 2024-09-23
            compatibility_flags: [nodejs_compat]
    """)
    (script,) = load_manifest(path, {}).scripts
    assert [(m.name, m.content_type) for m in script.modules] == [
        ("lib/util.mjs", "application/javascript+module"),
        ("add.wasm", "application/wasm"),
        ("page.html", "text/plain"),
        ("other.js", "application/javascript"),
    ]
    assert script.modules[0].path == (project / "src" / "lib" / "util.mjs").resolve()
    assert (script.compatibility_date, script.compatibility_flags) == ("2024-09-23", ("nodejs_compat",))
    before = script.content_sha256
    (project / "src" / "add.wasm").write_bytes(b"\0asm\1")
    assert load_manifest(path, {}).scripts[0].content_sha256 != before


def test_service_worker_hash_is_still_the_sha256_of_its_file(project: Path) -> None:
    path = write(project, f"version: 1\naccount_id: {ACCOUNT}\nscripts:\n  a:\n    path: src/worker.js\n")
    (script,) = load_manifest(path, {}).scripts
    assert script.content_sha256 == hashlib.sha256(WORKER_JS).hexdigest()


@pytest.mark.parametrize("text, filled", [
    ("${X:-${Y}}", "xx"),  # was "xx}": the default ended at the first '}'
    ("${UNSET:-${Y}}", "yy"),
    ("${UNSET:-${ALSO_UNSET:-z}}-${X}", "z-xx"),
    ("${EMPTY:-${Y}}", "yy"),
    ("$$${X}", "$xx"),  # was "$${X}"
    ("$${X}", "${X}"),
    ("$$$${X}", "$${X}"),
    ("a$$b $5 }{", "a$$b $5 }{"),
    ("${UNSET:-$${X}}", "${X}"),
])
def test_variables_are_filled_exactly(text: str, filled: str) -> None:
    environ = {"X": "xx", "Y": "yy", "EMPTY": ""}
    assert manifest_module.fill_text(text, environ) == (filled, [], [])


def test_a_default_that_is_not_used_does_not_need_its_variables() -> None:
    assert manifest_module.fill_text("${X:-${UNSET}}", {"X": "xx"}) == ("xx", [], [])
    assert manifest_module.fill_text("${NO:-${UNSET}}", {}) == ("", ["UNSET"], [])


@pytest.mark.parametrize("text, problem", [
    ("${X:-${Y}", "'${X:-${Y}' is not a valid placeholder"),
    ("${X", "'${X' is not a valid placeholder"),
    ("${X:-{a}}", "a '{' inside a ${NAME:-default} default is ambiguous"),
    ("${1X:-y}", "'${1X:-y}' is not a valid placeholder"),
])
def test_a_placeholder_that_could_be_read_two_ways_is_a_problem_not_a_guess(text: str, problem: str) -> None:
    filled, unset, problems = manifest_module.fill_text(text, {"X": "xx", "Y": "yy"})
    assert len(problems) == 1 and problem in problems[0]
