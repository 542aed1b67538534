"""A small validator for the part of JSON Schema that params.schema.yaml uses (type, enum, bounds,
pattern, lengths, properties, required, additionalProperties, items, and `$ref`s to its own `$defs`,
put in place by `inline_refs`). It is ours rather than the
jsonschema package's so that settings are checked the same way on a bare GPU node that has only torch,
numpy and pyyaml. Every problem is reported with the dotted path of the key it is about."""
from __future__ import annotations

import re

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}


def _join(path: tuple, key) -> tuple:
    return (*path, key)


def inline_refs(node, root: dict | None = None):
    """`node` with every {"$ref": "#/$defs/<name>"} replaced by a copy of that definition, so that any
    sub-schema (a search method's block, say) is checked on its own."""
    root = node if root is None else root
    if isinstance(node, list):
        return [inline_refs(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        name = ref.removeprefix("#/$defs/")
        if name == ref or name not in root.get("$defs", {}):
            raise ValueError(f"schema $ref {ref!r}: only #/$defs/<name> of the same schema is supported")
        return inline_refs(root["$defs"][name], root)
    return {key: inline_refs(value, root) for key, value in node.items()}


def problems(value, schema: dict, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, message) for everything in `value` that `schema` refuses."""
    out = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](value) for t in allowed):
            shown = allowed[0] if len(allowed) == 1 else allowed
            return [(path, f"{value!r} is not of type {shown!r}")]
    if "enum" in schema and value not in schema["enum"]:
        out.append((path, f"{value!r} is not one of {schema['enum']}"))
    if _TYPES["number"](value):
        for key, fails, words in (("minimum", lambda v, m: v < m, "less than the minimum of"),
                                  ("exclusiveMinimum", lambda v, m: v <= m, "less than or equal to the minimum of"),
                                  ("maximum", lambda v, m: v > m, "greater than the maximum of"),
                                  ("exclusiveMaximum", lambda v, m: v >= m, "greater than or equal to the maximum of")):
            if key in schema and fails(value, schema[key]):
                out.append((path, f"{value} is {words} {schema[key]}"))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append((path, f"{value!r} does not match {schema['pattern']!r}"))
        if len(value) < schema.get("minLength", 0):
            out.append((path, f"{value!r} is too short"))
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append((path, f"{value} should have at least {schema['minItems']} item(s)"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append((path, f"{value} should have at most {schema['maxItems']} items"))
        if "items" in schema:
            for i, item in enumerate(value):
                out += problems(item, schema["items"], _join(path, i))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                out.append((path, f"{key!r} is a required property"))
        if len(value) < schema.get("minProperties", 0):
            out.append((path, f"{value} should have at least {schema['minProperties']} entries"))
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += problems(item, props[key], _join(path, key))
            elif extra is False:
                out.append((_join(path, key), "unknown key: allowed here: " + ", ".join(sorted(props))))
            elif isinstance(extra, dict):
                out += problems(item, extra, _join(path, key))
    return out
