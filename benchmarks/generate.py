"""Write a synthetic project: ``workers.yaml``, N script files of a given size with a given number
of bindings, and (optionally) a state file that is up to date except for ``changed`` scripts.

The state is made the way an apply makes it: the manifest is loaded and planned by deployer itself
and every planned script is recorded through the real ``StateStore``; only then are the
``changed`` script files edited, so a plan finds exactly those as content updates.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ACCOUNT_ID = "0123456789abcdef0123456789abcdef"  # the fake's account (tests/fake_cloudflare.py)
SHARED_NAMESPACE = "shared"  # the key of the one declared namespace that references point at
NAMESPACE_COUNT = 8  # distinct literal namespace_ids the scripts bind to


@dataclass(frozen=True, slots=True)
class Project:
    root: Path
    manifest: Path
    scripts: tuple[str, ...]
    changed: tuple[str, ...]
    namespace_ids: tuple[str, ...]  # literal ids bound by namespace_id (seed them in a fake)
    state: Path | None


def namespace_id(index: int) -> str:
    return hashlib.md5(f"namespace-{index}".encode()).hexdigest()  # noqa: S324 - an id, not a hash


def script_name(index: int) -> str:
    return f"worker-{index:05d}"


def generate_project(
    root: Path,
    *,
    scripts: int = 1000,
    size: int = 50_000,
    bindings: int = 3,
    changed: int = 1,
    with_state: bool = True,
    namespace_reference: bool = True,
) -> Project:
    """Write the project under ``root`` (created; must be empty or missing).

    Bindings cycle through: a kv_namespace by ``namespace_id``, a ``plain_text``, and a
    kv_namespace by reference to the declared namespace ``shared`` (a second plain_text when
    ``namespace_reference`` is False, so an apply needs no namespace request). Secrets are left
    out on purpose: their scrypt fingerprints are slow by design (CONTRACT.md, "Plan output").
    """
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    (root / "src").mkdir()
    names = tuple(script_name(i) for i in range(scripts))
    lines = [
        "# A synthetic project written by benchmarks/generate.py",
        "version: 1",
        f"account_id: {ACCOUNT_ID}",
    ]
    if namespace_reference and bindings >= 3:
        lines += ["kv_namespaces:", f"  {SHARED_NAMESPACE}:", "    title: benchmark-shared"]
    lines.append("scripts:")
    for index, name in enumerate(names):
        _write_script(root / "src" / f"{name}.js", name, size)
        lines += [f"  {name}:", f"    path: src/{name}.js"]
        if bindings:
            lines.append("    bindings:")
        for b in range(bindings):
            lines += _binding(index, b, namespace_reference)
    manifest = root / "workers.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    changed_names = names[:changed]
    state = _write_state(manifest) if with_state else None
    for name in changed_names:
        with open(root / "src" / f"{name}.js", "a", encoding="utf-8") as stream:
            stream.write("// changed since the last apply\n")
    return Project(root, manifest, names, changed_names,
                   tuple(namespace_id(i) for i in range(NAMESPACE_COUNT)), state)


def _binding(script_index: int, binding_index: int, namespace_reference: bool) -> list[str]:
    kind = binding_index % 3
    if kind == 0:
        return ["      - type: kv_namespace", f"        name: KV{binding_index}",
                f"        namespace_id: {namespace_id(script_index % NAMESPACE_COUNT)}"]
    if kind == 2 and namespace_reference:
        return ["      - type: kv_namespace", f"        name: SHARED{binding_index}",
                f"        namespace: {SHARED_NAMESPACE}"]
    return ["      - type: plain_text", f"        name: TEXT{binding_index}",
            f"        text: value {binding_index} of script {script_index}"]


def _write_script(path: Path, name: str, size: int) -> None:
    head = (
        f"// {name}: generated for the deployer benchmarks\n"
        "addEventListener('fetch', event => {\n"
        f"  event.respondWith(new Response('hello from {name}'))\n"
        "})\n"
    )
    filler_line = f"// {name} padding " + "x" * 60 + "\n"
    count = max(0, size - len(head)) // len(filler_line) + 1
    body = (head + filler_line * count)[:max(size, len(head))]
    path.write_text(body, encoding="utf-8")


def _write_state(manifest_path: Path) -> Path:
    """Record every script and namespace of the manifest as deployed, via deployer itself."""
    from deployer.manifest.load import load_manifest
    from deployer.models import Action, ResourceState, ScriptState
    from deployer.plan.planner import deployed_binding, make_plan, resolver
    from deployer.state.store import StateStore, default_state_path

    manifest = load_manifest(manifest_path, os.environ)
    store = StateStore(default_state_path(manifest_path, None))
    with store.lock(command="benchmarks generate"):
        plan = make_plan(manifest, store.load())
        namespaces = [
            ResourceState(c.type, c.name, c.resource_name or "", namespace_id(1000 + i))
            for i, c in enumerate(plan.changes)
            if c.type == "kv_namespace" and c.action is Action.CREATE
        ]
        resolve = resolver(namespaces)
        scripts = [
            ScriptState(s.name, s.content_sha256, tuple(deployed_binding(b, resolve) for b in s.bindings))
            for s in manifest.scripts
        ]
        store.record(account_id=manifest.account_id, zone_id=manifest.zone_id, resources=namespaces)
        store.record(scripts=scripts)
        store.commit()
    return store.path
