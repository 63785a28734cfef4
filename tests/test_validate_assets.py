"""Validation of ``assets:`` on a script: exact messages, at the line that is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_validate import ACCOUNT, problems, project  # noqa: F401  (project: the fixture)


@pytest.fixture
def public(project: Path) -> Path:  # noqa: F811
    (project / "public").mkdir()
    (project / "public" / "index.html").write_text("<h1>hi</h1>\n")
    return project / "public"


def test_the_assets_binding_name_is_a_unique_javascript_identifier(public: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings:
              - {{type: plain_text, name: ASSETS, text: x}}
            assets: {{directory: public, binding: ASSETS}}
          b:
            path: src/worker.js
            assets: {{directory: public, binding: my-assets}}
    """) == [
        "workers.yaml:8:42: scripts.a.assets.binding: binding name 'ASSETS' is already used by the binding at line 7",
        "workers.yaml:11:42: scripts.b.assets.binding: 'my-assets' is not a valid JavaScript identifier",
    ]


def test_an_assets_binding_is_not_written_in_bindings(public: Path) -> None:
    found = problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            path: src/worker.js
            bindings:
              - {{type: assets, name: ASSETS}}
    """)
    assert len(found) == 1 and found[0].startswith("workers.yaml:7:16: scripts.a.bindings[0].type: 'assets' is not "
                                                   "a binding type")


def test_the_directory_must_exist_inside_the_manifests_directory(public: Path) -> None:
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            assets: {{directory: ../elsewhere}}
          b:
            assets: {{directory: missing}}
          c:
            assets: {{directory: public/index.html}}
    """) == [
        "workers.yaml:5:25: scripts.a.assets.directory: '../elsewhere' leads outside the manifest's directory",
        f"workers.yaml:7:25: scripts.b.assets.directory: assets directory 'missing' does not exist in {public.parent}",
        "workers.yaml:9:25: scripts.c.assets.directory: 'public/index.html' is not a directory",
    ]


def test_assets_need_account_id_and_a_known_config_value(public: Path) -> None:
    assert problems("""\
        version: 1
        zone_id: 0f2ac74b498b48028cb68387c421e279
        scripts:
          a:
            path: src/worker.js
            assets: {directory: public, html_handling: sometimes}
    """) == [
        "workers.yaml:6:5: scripts.a.assets: static assets need account_id: the legacy single-script API "
        "(zone_id) has no assets upload",
        "workers.yaml:6:48: scripts.a.assets.html_handling: 'sometimes' is not a valid html_handling; expected one "
        "of: auto-trailing-slash, force-trailing-slash, drop-trailing-slash, none",
    ]


def test_a_symlink_leading_out_is_named(public: Path, tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("secret")
    (public / "key.txt").symlink_to(outside)
    assert problems(f"""\
        version: 1
        account_id: {ACCOUNT}
        scripts:
          a:
            assets: {{directory: public}}
    """) == ["workers.yaml:5:25: scripts.a.assets.directory: public/key.txt is a symlink leading outside the "
             "manifest's directory; copy the file in, or list it in .assetsignore"]
