"""The quick schema check answers exactly as jsonschema does, for the packaged schema and for
every keyword it claims to evaluate; validate then needs jsonschema only to explain errors."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from deployer.errors import ManifestError
from deployer.manifest.quick_schema import IMPLEMENTED, UNSUPPORTED, compile_schema
from deployer.manifest.validate import _schema
from deployer.manifest.yaml_nodes import Parser, read_text

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((REPO / "tests" / "bad_inputs" / "manifests").glob("*.yaml")) + [
    REPO / "sample-project" / "workers.yaml"]
fast = settings(max_examples=300, deadline=None)


def same_answer(schema: dict[str, Any], document: Any) -> None:
    quick = compile_schema(schema)
    assert quick is not None
    assert quick(document) is Draft202012Validator(schema).is_valid(document), json.dumps(document, default=str)


def test_every_keyword_jsonschema_evaluates_is_implemented_or_left_to_it() -> None:
    assert set(Draft202012Validator.VALIDATORS) - {"format"} <= IMPLEMENTED | UNSUPPORTED


@pytest.mark.parametrize("definition", [None, "environments"])
def test_the_packaged_schema_compiles_so_a_valid_manifest_skips_jsonschema(definition: str | None) -> None:
    assert compile_schema(_schema(definition)) is not None


def test_a_schema_with_a_keyword_it_does_not_evaluate_is_left_to_jsonschema() -> None:
    assert compile_schema({"type": "object", "properties": {"n": {"multipleOf": 2}}}) is None
    assert compile_schema({"$ref": "https://example.com/schema.json"}) is None


def _documents() -> list[Any]:
    """Each manifest as deployer's YAML reader gives it to the schema (alias bombs refused)."""
    documents = []
    for path in MANIFESTS:
        try:
            root, data = Parser(str(path), {}, allow_unset=True).parse(read_text(path, str(path)))
        except ManifestError:
            continue  # not YAML deployer reads: never reaches the schema
        if root is not None:
            documents.append(data)
    return documents


@pytest.mark.parametrize("document", _documents(), ids=lambda d: str(d)[:40])
def test_the_bad_input_corpus_and_the_sample_get_jsonschemas_answer(document: Any) -> None:
    same_answer(_schema(), document)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3, allow_nan=False) | st.sampled_from(
        ["", "x", "kv_namespace", "plain_text", "secret_text", "r2_bucket", "service-worker", "modules", "${X}",
         "0f2ac74b498b48028cb68387c421e279", "my-worker", "src/a.js", "2024-01-01", "eu"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "name", "text", "namespace", "namespace_id", "path", "bindings", "title",
                         "bucket_name", "jurisdiction", "format", "other"]), inner, max_size=3),
    max_leaves=8,
)
SAMPLE = yaml.safe_load((REPO / "sample-project" / "workers.yaml").read_text(encoding="utf-8"))  # no aliases


def _nodes(document: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(document, dict):
        for key, value in document.items():
            found += _nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _nodes(value, (*path, index))
    return found


@fast
@given(st.data())
def test_a_mutated_manifest_gets_jsonschemas_answer(data: st.DataObject) -> None:
    document = copy.deepcopy(SAMPLE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_nodes(document)))
        if not path:
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        match data.draw(st.sampled_from(["replace", "delete", "add"])):
            case "replace":
                parent[path[-1]] = data.draw(json_values)
            case "delete":
                del parent[path[-1]]
            case "add" if isinstance(parent, dict):
                parent[data.draw(st.sampled_from(["extra", "type", "text", "name", "bindings"]))] = data.draw(json_values)
            case "add":
                parent.append(data.draw(json_values))
    same_answer(_schema(), document)


KEYWORD_SCHEMAS = [
    {"type": ["integer", "null"]},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 2},
    {"exclusiveMinimum": -1, "maximum": 1},
    {"type": "string", "minLength": 1, "maxLength": 2, "pattern": "^x"},
    {"enum": [1, True, None, "x", [1], {"a": 1}]},
    {"const": 1},
    {"const": [True, {"a": None}]},
    {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}, "minItems": 1,
     "maxItems": 3},
    {"items": False, "prefixItems": [True]},
    {"uniqueItems": True},
    {"type": "object", "patternProperties": {"^t": {"type": "string"}}, "additionalProperties": {"type": "null"},
     "properties": {"name": {"type": "string"}}, "minProperties": 1, "maxProperties": 2},
    {"dependentRequired": {"type": ["name"]}, "propertyNames": {"maxLength": 4}},
    {"not": {"type": "object"}},
    {"anyOf": [{"type": "string"}, {"type": "integer"}], "oneOf": [{"minimum": 0}, {"maximum": 0}]},
    {"if": {"properties": {"type": {"const": "x"}}, "required": ["type"]}, "then": {"required": ["name"]},
     "else": {"maxProperties": 1}},
    {"$defs": {"node": {"type": ["array", "integer"], "items": {"$ref": "#/$defs/node"}}}, "$ref": "#/$defs/node"},
    # Branches on one key (looked up, not tested one by one), two on the same value, one other rule:
    {"allOf": [
        {"if": {"type": "object", "properties": {"type": {"const": "x"}}, "required": ["type"]},
         "then": {"required": ["name"]}},
        {"if": {"type": "object", "properties": {"type": {"const": "x"}}, "required": ["type"]},
         "then": {"maxProperties": 2}},
        {"if": {"type": "object", "properties": {"type": {"const": "plain_text"}}, "required": ["type"]},
         "then": {"properties": {"text": {"type": "string"}}, "required": ["text"]}},
        {"propertyNames": {"maxLength": 8}},
    ]},
    # ... and branches on two different keys: tested one by one.
    {"allOf": [
        {"if": {"type": "object", "properties": {"type": {"const": "x"}}, "required": ["type"]},
         "then": {"required": ["name"]}},
        {"if": {"type": "object", "properties": {"name": {"const": "x"}}, "required": ["name"]},
         "then": {"required": ["text"]}},
    ]},
]


@fast
@given(st.sampled_from(KEYWORD_SCHEMAS), json_values)
def test_every_implemented_keyword_gets_jsonschemas_answer(schema: dict[str, Any], document: Any) -> None:
    same_answer(schema, document)
