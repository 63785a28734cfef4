"""Properties of ``make_plan`` over generated manifests and states (hypothesis).

For any manifest and any state of the same account: every script and namespace appears in the
plan exactly once with the action its presence implies; planning is deterministic and does not
depend on input order; and after applying the plan (simulated below: the state the executor
records for each change) planning again gives only no-ops.
"""
from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.fingerprint import fingerprint_secret
from deployer.models import (
    Action,
    Binding,
    Manifest,
    Plan,
    Script,
    ScriptState,
    State,
)
from deployer.plan.planner import make_plan
from tests.factories import ACCOUNT, deployed_kv, deployed_plain, deployed_secret, kv, namespace, namespace_state, plain, secret, sha

SCRIPT_NAMES = ["alpha", "beta", "gamma", "delta", "eps"]
NAMESPACE_KEYS = ["cache", "counts", "sessions"]
BINDING_NAMES = ["A", "B", "C", "D"]
LITERAL_IDS = ["0f2ac74b498b48028cb68387c421e279", "11111111111111111111111111111111"]
TEXTS = ["x", "y"]
SECRETS = ["s3cret-1", "s3cret-2"]
CONTENTS = [sha(v) for v in ("// v1", "// v2", "// v3")]
# scrypt is slow on purpose: one salted fingerprint per value, shared by every example.
FINGERPRINTS = {value: fingerprint_secret(value) for value in SECRETS}

fast = settings(max_examples=60, deadline=None)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    keys = draw(st.lists(st.sampled_from(NAMESPACE_KEYS), unique=True))
    namespaces = tuple(namespace(key, draw(st.sampled_from(["t1", "t2", "t3"])) + key) for key in keys)
    scripts = []
    for name in draw(st.lists(st.sampled_from(SCRIPT_NAMES), unique=True)):
        binding_names = draw(st.lists(st.sampled_from(BINDING_NAMES), unique=True, max_size=3))
        bindings = tuple(draw(_bindings(binding, keys)) for binding in binding_names)
        scripts.append(Script(name, Path(f"/p/{name}.js"), draw(st.sampled_from(CONTENTS)), bindings))
    return Manifest(Path("/p/workers.yaml"), ACCOUNT, None, namespaces, tuple(scripts))


def _bindings(name: str, keys: list[str]) -> st.SearchStrategy[Binding]:
    options: list[st.SearchStrategy[Binding]] = [
        st.builds(lambda i: kv(name, namespace_id=i), st.sampled_from(LITERAL_IDS)),
        st.builds(lambda t: plain(name, t), st.sampled_from(TEXTS)),
        st.builds(lambda v: secret(name, v), st.sampled_from(SECRETS)),
    ]
    if keys:
        options.append(st.builds(lambda k: kv(name, namespace=k), st.sampled_from(keys)))
    return st.one_of(options)


@st.composite
def states(draw: st.DrawFn) -> State:
    namespaces = tuple(
        namespace_state(key, draw(st.sampled_from(["t1", "t2", "t3"])) + key, f"{index:032x}")
        for index, key in enumerate(sorted(draw(st.lists(st.sampled_from(NAMESPACE_KEYS), unique=True))), 1)
    )
    ids = LITERAL_IDS + [ns.id for ns in namespaces] + ["deadbeef" * 4]
    scripts = []
    for name in sorted(draw(st.lists(st.sampled_from(SCRIPT_NAMES), unique=True))):
        bindings, fingerprints = [], []
        for binding in draw(st.lists(st.sampled_from(BINDING_NAMES), unique=True, max_size=3)):
            kind = draw(st.sampled_from(["kv_namespace", "plain_text", "secret_text"]))
            match kind:
                case "kv_namespace":
                    bindings.append(deployed_kv(binding, draw(st.sampled_from(ids))))
                case "plain_text":
                    bindings.append(deployed_plain(binding, draw(st.sampled_from(TEXTS))))
                case "secret_text":
                    bindings.append(deployed_secret(binding))
                    value = draw(st.sampled_from([*SECRETS, None]))  # None: no fingerprint recorded
                    if value is not None:
                        fingerprints.append((binding, FINGERPRINTS[value]))
        scripts.append(ScriptState(name, draw(st.sampled_from(CONTENTS)), tuple(bindings), tuple(fingerprints)))
    serial = draw(st.integers(0, 50)) if scripts or namespaces else 0
    return State("lineage-p" if serial else "", serial, ACCOUNT, None, tuple(scripts), namespaces)


def simulate_apply(plan: Plan, manifest: Manifest, state: State) -> State:
    """The state an apply of ``plan`` records: what the executor saves after each success."""
    namespaces = {ns.key: ns for ns in state.resources}
    for change in plan.changes:
        if change.type != "kv_namespace":
            continue
        match change.action:
            case Action.CREATE:
                namespaces[change.name] = namespace_state(change.name, change.resource_name or "", f"new-{change.name}")
            case Action.UPDATE:
                namespaces[change.name] = namespace_state(change.name, change.resource_name or "", change.resource_id or "")
            case Action.FORGET:
                del namespaces[change.name]
    ids = {key: ns.id for key, ns in namespaces.items()}
    wanted = {script.name: script for script in manifest.scripts}
    scripts = {script.name: script for script in state.scripts}
    for change in plan.changes:
        if change.type != "script":
            continue
        match change.action:
            case Action.CREATE | Action.UPDATE:
                scripts[change.name] = _uploaded(wanted[change.name], ids)
            case Action.DELETE:
                del scripts[change.name]
    return State(state.lineage or "lineage-new", state.serial + 1, ACCOUNT, None,
                 tuple(scripts[name] for name in sorted(scripts)),
                 tuple(namespaces[key] for key in sorted(namespaces)))


def _uploaded(script: Script, ids: dict[str, str]) -> ScriptState:
    # Written out here, not borrowed from the planner: the property checks the planner's rule.
    bindings = []
    for binding in script.bindings:
        match binding.type:
            case "kv_namespace":
                literal, ref = binding.get("namespace_id"), binding.get("namespace")
                bindings.append(deployed_kv(binding.name, str(literal) if literal is not None else ids[str(ref)]))
            case "plain_text":
                bindings.append(deployed_plain(binding.name, str(binding.get("text"))))
            case "secret_text":
                bindings.append(deployed_secret(binding.name))
    fingerprints = tuple(sorted((b.name, FINGERPRINTS[b.secret.value]) for b in script.bindings
                                if b.secret is not None))
    return ScriptState(script.name, script.content_sha256, tuple(bindings), fingerprints)


@fast
@given(manifests(), states())
def test_applying_the_plan_then_planning_again_gives_only_no_ops(manifest: Manifest, state: State) -> None:
    plan = make_plan(manifest, state)
    after = make_plan(manifest, simulate_apply(plan, manifest, state))
    assert [c.action for c in after.changes if c.action is not Action.NO_OP] == [], after
    assert not after.has_changes


@fast
@given(manifests(), states(), st.randoms(use_true_random=False))
def test_planning_is_deterministic_and_ignores_input_order(manifest: Manifest, state: State, rng) -> None:
    plan = make_plan(manifest, state)
    assert make_plan(manifest, state) == plan
    shuffled_scripts, shuffled_namespaces = list(manifest.scripts), list(manifest.resources)
    rng.shuffle(shuffled_scripts)
    rng.shuffle(shuffled_namespaces)
    recorded_scripts, recorded_namespaces = list(state.scripts), list(state.resources)
    rng.shuffle(recorded_scripts)
    rng.shuffle(recorded_namespaces)
    reordered = make_plan(
        Manifest(manifest.path, ACCOUNT, None, tuple(shuffled_namespaces), tuple(shuffled_scripts)),
        State(state.lineage, state.serial, ACCOUNT, None, tuple(recorded_scripts), tuple(recorded_namespaces)),
    )
    assert reordered == plan


@fast
@given(manifests(), states())
def test_every_script_and_namespace_appears_exactly_once_with_the_implied_action(
    manifest: Manifest, state: State
) -> None:
    plan = make_plan(manifest, state)
    scripts = [c for c in plan.changes if c.type == "script"]
    namespaces = [c for c in plan.changes if c.type == "kv_namespace"]
    wanted, recorded = {s.name for s in manifest.scripts}, {s.name for s in state.scripts}
    assert sorted(c.name for c in scripts) == sorted(wanted | recorded)
    declared, known = {n.key for n in manifest.resources}, {n.key for n in state.resources}
    assert sorted(c.name for c in namespaces) == sorted(declared | known)
    assert plan.changes == (*namespaces, *scripts)  # namespaces first, each sorted by name
    for change in scripts:
        if change.name not in recorded:
            assert change.action is Action.CREATE
        elif change.name not in wanted:
            assert change.action is Action.DELETE
        else:
            assert change.action in (Action.UPDATE, Action.NO_OP)
            assert (change.action is Action.UPDATE) == bool(change.reasons)
    for change in namespaces:
        if change.name not in known:
            assert change.action is Action.CREATE
        elif change.name not in declared:
            assert change.action is Action.FORGET
    assert (plan.lineage, plan.serial) == (state.lineage, state.serial)
