"""A yes/no answer to "is this document valid against the packaged JSON Schema?", from plain
closures compiled once from the schema. ``validate.check_schema`` asks it first and leaves
explaining errors to jsonschema, so a valid manifest (the usual case) costs neither jsonschema's
per-keyword overhead (most of plan's time at 1,000 scripts) nor its imports (~35 ms per command).

For every document it answers exactly as jsonschema's Draft 2020-12 validator does (without a
format checker, as ``validate`` builds it); a schema using a keyword it does not evaluate
compiles to None, and jsonschema then decides alone. ``tests/test_quick_schema.py`` holds it to that.
"""
from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords of Draft 2020-12 this module evaluates, and those it does not (a schema with one of
# them is left to jsonschema). Others are annotations ("format" too: no format checker is given).
IMPLEMENTED = frozenset({"type", "$ref", "properties", "patternProperties", "additionalProperties", "propertyNames",
                         "required", "dependentRequired", "minProperties", "maxProperties", "prefixItems", "items",
                         "minItems", "maxItems", "uniqueItems", "pattern", "minLength", "maxLength", "minimum",
                         "maximum", "exclusiveMinimum", "exclusiveMaximum", "const", "enum", "allOf", "anyOf",
                         "oneOf", "not", "if", "then", "else"})
UNSUPPORTED = frozenset({"$dynamicRef", "$dynamicAnchor", "$anchor", "$recursiveRef", "contains", "minContains",
                         "maxContains", "dependentSchemas", "multipleOf", "unevaluatedItems",
                         "unevaluatedProperties"})
_TYPES: dict[str, Check] = {
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer()),
    "null": lambda x: x is None,
    "number": lambda x: isinstance(x, numbers.Number) and not isinstance(x, bool),
    "object": lambda x: isinstance(x, dict),
    "string": lambda x: isinstance(x, str),
}


class _Unsupported(Exception):
    """The schema uses something this module does not evaluate."""


def compile_schema(root: Mapping[str, Any]) -> Check | None:
    """A function telling whether a document is valid against ``root``, or None when ``root``
    uses a keyword or reference this module does not evaluate."""
    try:
        return _Compiler(root).compile(root, top=True)
    except _Unsupported:
        return None


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Check] = {}

    def compile(self, schema: Any, *, top: bool = False) -> Check:
        if schema is True:
            return lambda x: True
        if schema is False:
            return lambda x: False
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        if UNSUPPORTED & schema.keys() or ("$id" in schema and not top):
            raise _Unsupported(", ".join(sorted(UNSUPPORTED & schema.keys())) or "$id")
        checks = [check for check in (
            self._type(schema), self._ref(schema), self._object(schema), self._array(schema),
            _string(schema), _number(schema), _choices(schema), self._combined(schema), self._condition(schema),
        ) if check is not None]
        return _all(checks)

    def _type(self, schema: dict[str, Any]) -> Check | None:
        if "type" not in schema:
            return None
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(isinstance(name, str) and name in _TYPES for name in names):
            raise _Unsupported(f"type {schema['type']!r}")
        tests = [_TYPES[name] for name in names]
        return tests[0] if len(tests) == 1 else lambda x: any(test(x) for test in tests)

    def _ref(self, schema: dict[str, Any]) -> Check | None:
        ref = schema.get("$ref")
        if ref is None:
            return None
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise _Unsupported(f"$ref {ref!r}")
        if ref not in self.refs:
            self.refs[ref] = lambda x: True  # a placeholder while compiling a recursive reference
            compiled = self.compile(_pointer(self.root, ref))
            self.refs[ref] = compiled
        refs = self.refs
        return lambda x: refs[ref](x)

    def _object(self, schema: dict[str, Any]) -> Check | None:
        properties = {key: self.compile(sub) for key, sub in schema.get("properties", {}).items()}
        patterns = [(re.compile(p), self.compile(sub)) for p, sub in schema.get("patternProperties", {}).items()]
        additional = schema.get("additionalProperties", True)
        additional_check = None if additional is True else self.compile(additional)
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None
        required = tuple(schema.get("required", ()))
        dependent = {key: tuple(needs) for key, needs in schema.get("dependentRequired", {}).items()}
        least, most = schema.get("minProperties", 0), schema.get("maxProperties")
        if not (properties or patterns or additional_check or names or required or dependent or least or most is not None):
            return None

        def check(x: Any) -> bool:
            if not isinstance(x, dict):
                return True
            if len(x) < least or (most is not None and len(x) > most):
                return False
            for key in required:
                if key not in x:
                    return False
            for key, value in x.items():
                sub = properties.get(key)
                if sub is not None and not sub(value):
                    return False
                matched = False
                for pattern, pattern_check in patterns:
                    if pattern.search(key):
                        matched = True
                        if not pattern_check(value):
                            return False
                if additional_check is not None and sub is None and not matched and not additional_check(value):
                    return False
                if names is not None and not names(key):
                    return False
                if key in dependent and not all(need in x for need in dependent[key]):
                    return False
            return True

        return check

    def _array(self, schema: dict[str, Any]) -> Check | None:
        prefix = [self.compile(sub) for sub in schema.get("prefixItems", ())]
        items = self.compile(schema["items"]) if "items" in schema else None
        least, most = schema.get("minItems", 0), schema.get("maxItems")
        unique = schema.get("uniqueItems") is True
        if not (prefix or items or least or most is not None or unique):
            return None

        def check(x: Any) -> bool:
            if not isinstance(x, list):
                return True
            if len(x) < least or (most is not None and len(x) > most):
                return False
            for sub, value in zip(prefix, x):
                if not sub(value):
                    return False
            if items is not None and not all(items(value) for value in x[len(prefix):]):
                return False
            return not unique or all(not _equal(a, b) for i, a in enumerate(x) for b in x[i + 1:])

        return check

    def _combined(self, schema: dict[str, Any]) -> Check | None:
        checks = []
        if "allOf" in schema:
            checks.append(self._all_of(schema["allOf"]))
        if "anyOf" in schema:
            any_of = [self.compile(sub) for sub in schema["anyOf"]]
            checks.append(lambda x: any(sub(x) for sub in any_of))
        if "oneOf" in schema:
            one_of = [self.compile(sub) for sub in schema["oneOf"]]
            checks.append(lambda x: sum(1 for sub in one_of if sub(x)) == 1)
        if "not" in schema:
            negated = self.compile(schema["not"])
            checks.append(lambda x: not negated(x))
        return _all(checks) if checks else None

    def _all_of(self, subs: list[Any]) -> Check:
        """``allOf``; its ``if {type: object, properties: {K: {const: "v"}}, required: [K]} then
        S`` branches (the binding types') become one lookup of x[K] instead of a test per branch."""
        branches: dict[str, list[Check]] = {}
        keys, rest = set(), []
        for sub in subs:
            found = _discriminated(sub)
            if found is None:
                rest.append(self.compile(sub))
                continue
            key, value = found
            keys.add(key)
            branches.setdefault(value, []).append(self.compile(sub["then"]))
        if len(keys) != 1:  # none, or branches on different keys: compile them as written
            return _all([self.compile(sub) for sub in subs])
        key = keys.pop()
        lookup = {value: _all(checks) for value, checks in branches.items()}

        def dispatch(x: Any) -> bool:
            # No branch's condition holds for a non-object or a missing or non-string x[K].
            if not isinstance(x, dict):
                return True
            value = x.get(key)
            branch = lookup.get(value) if isinstance(value, str) else None
            return branch is None or branch(x)

        return _all([dispatch, *rest])

    def _condition(self, schema: dict[str, Any]) -> Check | None:
        if "if" not in schema:
            return None
        condition = self.compile(schema["if"])
        then = self.compile(schema.get("then", True))
        otherwise = self.compile(schema.get("else", True))
        return lambda x: then(x) if condition(x) else otherwise(x)


def _discriminated(schema: Any) -> tuple[str, str] | None:
    """``(K, v)`` when ``schema`` is exactly ``{if: {type: object, properties: {K: {const: v}},
    required: [K]}, then: ...}`` with a string ``v``; None otherwise."""
    if not isinstance(schema, dict) or schema.keys() != {"if", "then"}:
        return None
    condition = schema["if"]
    if not isinstance(condition, dict) or condition.keys() != {"type", "properties", "required"}:
        return None
    properties, required = condition["properties"], condition["required"]
    if condition["type"] != "object" or not isinstance(properties, dict) or len(properties) != 1:
        return None
    (key, const), = properties.items()
    if required != [key] or not isinstance(const, dict) or const.keys() != {"const"}:
        return None
    return (key, const["const"]) if isinstance(const["const"], str) else None


def _string(schema: dict[str, Any]) -> Check | None:
    pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
    least, most = schema.get("minLength", 0), schema.get("maxLength")
    if pattern is None and not least and most is None:
        return None

    def check(x: Any) -> bool:
        if not isinstance(x, str):
            return True
        if len(x) < least or (most is not None and len(x) > most):
            return False
        return pattern is None or pattern.search(x) is not None

    return check


_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda x, bound: bool(x >= bound),
    "maximum": lambda x, bound: bool(x <= bound),
    "exclusiveMinimum": lambda x, bound: bool(x > bound),
    "exclusiveMaximum": lambda x, bound: bool(x < bound),
}


def _number(schema: dict[str, Any]) -> Check | None:
    bounds = [(schema[key], compare) for key, compare in _BOUNDS.items() if key in schema]
    if not bounds:
        return None
    is_number = _TYPES["number"]
    return lambda x: not is_number(x) or all(compare(x, bound) for bound, compare in bounds)


def _choices(schema: dict[str, Any]) -> Check | None:
    checks: list[Check] = []
    if "const" in schema:
        const = schema["const"]
        checks.append(lambda x: _equal(x, const))
    if "enum" in schema:
        choices = list(schema["enum"])
        if all(isinstance(choice, str) for choice in choices):
            strings = frozenset(choices)
            checks.append(lambda x: isinstance(x, str) and x in strings)
        else:
            checks.append(lambda x: any(_equal(x, choice) for choice in choices))
    return _all(checks) if checks else None


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]

    def check(x: Any) -> bool:
        for each in checks:
            if not each(x):
                return False
        return True

    return check


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema judges it: true and 1 differ, 1 and 1.0 do not."""
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return one is two
    return bool(one == two)


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    """The part of ``root`` a local reference (``#/$defs/name``) points at."""
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise _Unsupported(f"$ref {ref!r}")
    return node
