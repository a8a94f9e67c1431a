"""The JSON Schema of the spec language, as committed in schemas/cvspec.schema.json.

pydantic's schema of the models, adjusted to accept what `cvspec validate` accepts and no
more: a mapping with name patterns for keys (profiles, sweep keys, data paths) takes no other
keys; a `${a.b}` reference may stand for any scalar; a profile is a partial spec (every key
optional, no unknown keys); and a spec with `extends` is a partial spec too, completed by the
files it extends, so only a spec without `extends` must have the required keys.
"""

from __future__ import annotations

import copy
import json
from typing import Any

SCHEMA_PATH = "schemas/cvspec.schema.json"
SCHEMA_ID = "https://cvspec.dev/schemas/cvspec-1.schema.json"
SPECS = ("ClassificationSpec", "DetectionSpec")
REFERENCE = "Reference"
_SCALARS = {"string", "integer", "number", "boolean"}
_META = ("title", "description", "default")
_NOT_IN_PROFILE = ("extends", "profiles")  # a profile is merged after extends, into one spec


def schema() -> dict[str, Any]:
    """The schema as data, with the draft and id editors look for."""
    from cvspec.spec.model import SPEC_ADAPTER

    body: dict[str, Any] = SPEC_ADAPTER.json_schema()
    defs: dict[str, Any] = body.pop("$defs")
    for name, definition in list(defs.items()):
        task = definition.get("properties", {}).get("task") if name in SPECS else None
        defs[name] = _references_allowed(_closed(definition))
        if task is not None:  # the tag that picks the task's schema stays a plain constant
            defs[name]["properties"]["task"] = task
    defs[REFERENCE] = {
        "description": "A ${path.to.key} reference to another value of the spec (resolved "
        "before validation).",
        "pattern": r"\$\{\s*[A-Za-z_][\w.]*\s*\}",
        "type": "string",
    }
    extending = []
    for name in SPECS:
        spec = defs[name]
        _partial(defs, name)
        profile = defs[f"{name}Partial"]
        for key in _NOT_IN_PROFILE:
            profile["properties"].pop(key, None)
        profile["description"] = (
            "A profile: keys of the spec, each optional, merged on top of it by --profile NAME."
        )
        names = spec["properties"]["profiles"]
        names["patternProperties"] = {
            pattern: {"$ref": f"#/$defs/{name}Partial"} for pattern in names["patternProperties"]
        }
        child = copy.deepcopy(profile)
        child["properties"] = {
            **{k: spec["properties"][k] for k in _NOT_IN_PROFILE},
            **profile["properties"],
        }
        child["description"] = (
            f"{spec['description']} With `extends`, every key is optional: the files it "
            "extends give the rest."
        )
        defs[f"{name}Extending"] = child
        extending.append({"$ref": f"#/$defs/{name}Extending"})
    extends = {"required": ["extends"], "properties": {"extends": {"not": {"type": "null"}}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cvspec project spec, language v1",
        "if": extends,
        "then": {"anyOf": extending},
        "else": body,
        "$defs": defs,
    }


def schema_bytes() -> bytes:
    """Deterministic JSON bytes of the schema."""
    return (json.dumps(schema(), indent=2, sort_keys=True) + "\n").encode("utf-8")


def _closed(node: Any) -> Any:
    """`node` with `additionalProperties: false` wherever keys must match `patternProperties`
    (pydantic leaves other keys allowed; the models do not allow them)."""
    if isinstance(node, list):
        return [_closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if "patternProperties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _scalar(node: dict[str, Any]) -> bool:
    """A schema of a scalar that a reference string would not already match."""
    kind = node.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    if kinds & {"object", "array", "null"} or "$ref" in node:
        return False
    if kinds == {"string"} and not any(k in node for k in ("pattern", "const", "enum")):
        return False  # any string: a reference is one
    return bool(kinds & _SCALARS) or "const" in node or "enum" in node


def _references_allowed(node: Any, wrap: bool = True) -> Any:
    """`node` where a `${a.b}` reference may stand for each scalar (a union of scalars gets
    the reference as one more member)."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {k: _references_allowed(v) for k, v in out[key].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _references_allowed(out["items"])
    if "prefixItems" in out:
        out["prefixItems"] = [_references_allowed(v) for v in out["prefixItems"]]
    ref = {"$ref": f"#/$defs/{REFERENCE}"}
    for key in ("anyOf", "oneOf"):
        if key not in out:
            continue
        members = [_references_allowed(v, wrap=False) for v in out[key]]
        if not any(_scalar(m) for m in members):
            out[key] = members
        elif key == "anyOf":
            out[key] = [*members, ref]
        else:  # a reference could match a member too: one of them, or the reference
            del out[key]
            out["anyOf"] = [{"oneOf": members}, ref]
    if wrap and _scalar(out):
        meta = {k: out.pop(k) for k in _META if k in out}
        return {"anyOf": [out, ref], **meta}
    return out


def _partial(defs: dict[str, Any], name: str) -> str:
    """The name of `<name>Partial`, made on first use: the model `name` with no required
    keys, and its mappings (not list items: a list is replaced whole) partial too."""
    partial = f"{name}Partial"
    if partial not in defs:
        body = copy.deepcopy(defs[name])
        body.pop("required", None)
        defs[partial] = body  # before the properties: a model may refer to itself
        body["properties"] = {k: _partial_of(defs, v) for k, v in body["properties"].items()}
    return partial


def _partial_of(defs: dict[str, Any], node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = dict(node)
    target = str(out.get("$ref", "")).rsplit("/", 1)[-1]
    if target in defs and "properties" in defs[target]:
        out["$ref"] = f"#/$defs/{_partial(defs, target)}"
    for key in ("anyOf", "oneOf"):
        if key in out:  # partial members can overlap ({} is both partial splits): any of them
            out["anyOf"] = [_partial_of(defs, v) for v in out.pop(key)]
    return out
