"""The committed JSON Schema is current, valid, and accepts the example specs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import REPO, cvspec, tool

from cvspec.spec.schema import SCHEMA_PATH, schema_bytes


def test_committed_schema_is_current() -> None:
    committed = (REPO / SCHEMA_PATH).read_bytes()
    assert committed == schema_bytes(), "schemas/cvspec.schema.json is stale: run `make schema`"


def test_schema_command_writes_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    result = cvspec("schema", cwd=tmp_path)
    assert result.code == 0, result.err
    assert (tmp_path / SCHEMA_PATH).read_bytes() == schema_bytes()
    again = cvspec("schema", cwd=tmp_path)
    assert again.out.endswith("is up to date\n")


def test_every_field_has_a_description() -> None:
    import json

    body = json.loads(schema_bytes())
    defs = body["$defs"]

    def described(prop: dict[str, object]) -> bool:
        ref = str(prop.get("$ref", "")).rsplit("/", 1)[-1]
        return bool(prop.get("description") or defs.get(ref, {}).get("description"))

    missing = [
        f"{name}.{key}"
        for name, d in defs.items()
        for key, prop in d.get("properties", {}).items()
        if not described(prop)
    ]
    assert missing == []


def test_example_specs_carry_the_modeline_and_pass_the_schema() -> None:
    specs = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.name.startswith("_"))
    for spec in specs:
        first = spec.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/cvspec.schema.json"
    checker = tool("check-jsonschema")
    subprocess.run([checker, "--schemafile", str(REPO / SCHEMA_PATH), *map(str, specs)], check=True)
