"""The JSON Schema of the spec language, as committed in schemas/cvspec.schema.json."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_PATH = "schemas/cvspec.schema.json"
SCHEMA_ID = "https://cvspec.dev/schemas/cvspec-1.schema.json"


def schema() -> dict[str, Any]:
    """The schema as data, with the draft and id editors look for."""
    from cvspec.spec.model import SPEC_ADAPTER

    body: dict[str, Any] = SPEC_ADAPTER.json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cvspec project spec, language v1",
        **body,
    }


def schema_bytes() -> bytes:
    """Deterministic JSON bytes of the schema."""
    return (json.dumps(schema(), indent=2, sort_keys=True) + "\n").encode("utf-8")
