"""The benchmark project generator writes a valid project whose state is up to date except for
the scripts it was asked to change. A smoke test only: nothing is timed here."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.generate import generate_project
from benchmarks.goals import plant_namespaces
from deployer.manifest.load import load_manifest
from deployer.models import Action
from deployer.plan.planner import make_plan
from deployer.state.store import StateStore
from tests.fake_cloudflare import FakeCloudflare


def test_generated_project_plans_exactly_the_changed_scripts(tmp_path: Path) -> None:
    project = generate_project(tmp_path / "p", scripts=5, size=2_000, bindings=3, changed=2)
    manifest = load_manifest(project.manifest, os.environ)
    assert project.state is not None
    plan = make_plan(manifest, StateStore(project.state).load())
    actions = {c.name: c.action for c in plan.changes if c.type == "script"}
    assert actions == {name: Action.UPDATE if name in project.changed else Action.NO_OP
                       for name in project.scripts}
    assert all(len(s.bindings) == 3 for s in manifest.scripts)
    assert all(2_000 <= s.path.stat().st_size <= 2_100 for s in manifest.scripts)


def test_generated_project_without_state_creates_every_script(tmp_path: Path) -> None:
    project = generate_project(tmp_path / "p", scripts=3, size=500, changed=0, with_state=False,
                               namespace_reference=False)
    plan = make_plan(load_manifest(project.manifest, os.environ), StateStore(project.manifest.parent
                                                                             / ".deployer" / "state.json").load())
    assert [c.action for c in plan.changes] == [Action.CREATE] * 3


def test_apply_floor_client_uploads_every_script_the_fake_accepts_and_refuses_existing_ones(
    tmp_path: Path, fake_cloudflare: FakeCloudflare
) -> None:
    """P2's floor (benchmarks/floor_apply.py) must do the uploads deployer does, judged by the
    same fake, or the figure it prints beside P2 compares nothing."""
    project = generate_project(tmp_path / "p", scripts=3, size=500, changed=0, with_state=False,
                               namespace_reference=False)
    plant_namespaces(fake_cloudflare, project)
    command = [sys.executable, str(Path(__file__).parent.parent / "benchmarks" / "floor_apply.py"),
               str(project.manifest)]
    env = {**os.environ, **fake_cloudflare.environ()}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert fake_cloudflare.successful_uploads() == {name: 1 for name in project.scripts}
    assert len((project.root / ".deployer" / "floor.journal").read_text().splitlines()) == 3

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert fake_cloudflare.count("PUT") == 3
