"""Builders for in-memory manifests and states (chalice's create_function_resource idea)."""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

from deployer.kinds import kv_namespace, plain_text, secret_text
from deployer.models import (
    Resource,
    ResourceState,
    Binding,
    DeployedBinding,
    Manifest,
    Script,
    ScriptState,
    State,
)
from deployer.plan.planner import deployed_binding, resolver

ACCOUNT = "0123456789abcdef0123456789abcdef"
NAMESPACE_ID = "0f2ac74b498b48028cb68387c421e279"


def sha(content: bytes | str) -> str:
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def kv(name: str, namespace_id: str | None = NAMESPACE_ID, namespace: str | None = None) -> Binding:
    if namespace is not None:
        namespace_id = None
    return kv_namespace.KIND.build(name, {"namespace_id": namespace_id, "namespace": namespace})


def plain(name: str, text: str) -> Binding:
    return plain_text.KIND.build(name, {"text": text})


def secret(name: str, value: str) -> Binding:
    return secret_text.KIND.build(name, {"text": value})


def deployed_kv(name: str, namespace_id: str | None = NAMESPACE_ID) -> DeployedBinding:
    """A recorded kv_namespace binding (namespace_id None: known after apply)."""
    return DeployedBinding("kv_namespace", name, (("namespace_id", namespace_id),))


def deployed_plain(name: str, text: str) -> DeployedBinding:
    return DeployedBinding("plain_text", name, (("text", text),))


def deployed_secret(name: str) -> DeployedBinding:
    return DeployedBinding("secret_text", name)


def make_script(name: str = "my-worker", content: str = "// v1", bindings: tuple[Binding, ...] = ()) -> Script:
    return Script(name, Path(f"/project/{name}.js"), sha(content), bindings)


def make_manifest(
    *scripts: Script,
    namespaces: tuple[Resource, ...] = (),
    account_id: str | None = ACCOUNT,
    zone_id: str | None = None,
) -> Manifest:
    return Manifest(Path("/project/workers.yaml"), account_id, zone_id, namespaces, scripts)


def resource_ids(ids: Iterable[str] = ()) -> dict[str, frozenset[str]]:
    """What ``--refresh`` saw of KV namespaces: their ids."""
    return {"kv_namespace": frozenset(ids)}


def namespace(key: str, title: str) -> Resource:
    """A kv_namespace the manifest declares under kv_namespaces."""
    return Resource("kv_namespace", key, title)


def namespace_state(key: str, title: str, namespace_id: str) -> ResourceState:
    return ResourceState("kv_namespace", key, title, namespace_id)


def deployed(binding: Binding, namespace_ids: dict[str, str] | None = None) -> DeployedBinding:
    """What the state records for a binding that was uploaded (the planner's own rule)."""
    ids = (namespace_state(key, key, value) for key, value in (namespace_ids or {}).items())
    return deployed_binding(binding, resolver(ids))


def recorded(
    script: Script,
    *,
    content_sha256: str | None = None,
    fingerprints: tuple[tuple[str, str], ...] = (),
    namespace_ids: dict[str, str] | None = None,
) -> ScriptState:
    """The state of ``script`` as if it had been deployed as it is now."""
    return ScriptState(
        name=script.name,
        content_sha256=content_sha256 or script.content_sha256,
        bindings=tuple(deployed(b, namespace_ids) for b in script.bindings),
        secret_fingerprints=fingerprints,
    )


def make_state(
    *scripts: ScriptState,
    namespaces: tuple[ResourceState, ...] = (),
    account_id: str | None = ACCOUNT,
    serial: int = 1,
) -> State:
    return State("lineage-1", serial, account_id, None, scripts, namespaces)


# --- projects on disk (end-to-end tests) ----------------------------------------------------


def write_project(
    directory: Path,
    scripts: list[str],
    *,
    namespace: str | None = None,
    account_id: str = ACCOUNT,
) -> Path:
    """A project with one script file per name (``<name>.js``), each with a plain_text binding;
    with ``namespace``, a declared kv_namespace bound by the first script. Returns the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["version: 1", f"account_id: {account_id}"]
    if namespace is not None:
        lines += ["kv_namespaces:", "  store:", f"    title: {namespace}"]
    lines.append("scripts:" if scripts else "scripts: {}")
    for index, name in enumerate(scripts):
        (directory / f"{name}.js").write_text(f"addEventListener('fetch', () => {{}}) // {name}\n")
        lines += [f"  {name}:", f"    path: {name}.js", "    bindings:",
                  "      - type: plain_text", "        name: NAME", f"        text: {name}"]
        if namespace is not None and index == 0:
            lines += ["      - type: kv_namespace", "        name: STORE", "        namespace: store"]
    manifest = directory / "workers.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def sample_with_triggers(tmp_path: Path) -> Path:
    """A copy of sample-project/ as it is (the ``project`` fixture leaves out its triggers)."""
    target = tmp_path / "project"
    shutil.copytree(Path(__file__).resolve().parent.parent / "sample-project", target)
    return target
