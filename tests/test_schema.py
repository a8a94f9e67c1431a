"""The committed JSON Schema is current, valid, and accepts the example specs."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import MINIMAL_SPEC, REPO, cvspec, tool

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


def test_a_detectors_precision_and_recall_gates_say_at_which_confidence() -> None:
    """ultralytics' P and R (the evaluate stage's) are at the confidence of the best mean F1,
    not at evaluate.conf (0.001, where precision is near 0) or serve.box_confidence."""
    import json

    gates = json.loads(schema_bytes())["$defs"]["DetectionGates"]["properties"]
    for name in ("precision", "recall"):
        assert "at IoU 0.5 and the best-F1 confidence" in gates[name]["description"], name


def test_example_specs_carry_the_modeline_and_pass_the_schema() -> None:
    specs = sorted(p for p in (REPO / "specs").glob("*.yaml") if not p.name.startswith("_"))
    for spec in specs:
        first = spec.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/cvspec.schema.json"
    checker = tool("check-jsonschema")
    subprocess.run([checker, "--schemafile", str(REPO / SCHEMA_PATH), *map(str, specs)], check=True)


BASE = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}")
# Specs both must accept (True) or both reject (False): what the schema can decide alone.
AGREEMENT = {
    "minimal": (True, BASE),
    "child-of-a-partial": (True, "extends: _base.yaml\nproject: {name: child}\n"),
    "child-typo": (False, "extends: _base.yaml\nproject: {name: child}\nmodle: {}\n"),
    "child-bad-value": (False, "extends: _base.yaml\nproject: {name: Child}\n"),
    "references": (
        True,
        BASE.replace("image_size: 32", "image_size: '${train.batch_size}'")
        + "train: {batch_size: 64, seed: 3, workers: '${train.seed}'}\n"
        + "deploy: {image: 'ghcr.io/acme/${project.name}'}\n",
    ),
    "profile-partial": (
        True,
        BASE + "profiles:\n"
        "  prod: {train: {epochs: 50}, evaluate: {gates: {accuracy: {min: 0.9}}}}\n"
        "  ci: {data: {splits: {val: 0.5}}, model: {image_size: 16}}\n",
    ),
    "profile-name": (False, BASE + "profiles: {CI: {train: {epochs: 1}}}\n"),
    "profile-typo": (False, BASE + "profiles: {prod: {train: {epoch: 50}}}\n"),
    "profile-section-typo": (False, BASE + "profiles: {prod: {modle: {}}}\n"),
    "profile-type": (False, BASE + "profiles: {prod: {train: {epochs: '50'}}}\n"),
    "profile-extends": (False, BASE + "profiles: {prod: {extends: other.yaml}}\n"),
    "sweep-key": (False, BASE + "train: {sweep: {Train.LR: [0.1]}}\n"),
    "relabel-key": (False, BASE.replace("demo}", "demo, relabel: {/abs/1.png: cat}}")),
    "epochs-string": (False, BASE + "train: {epochs: '10'}\n"),
    "lr-string": (False, BASE + "train: {optimizer: {lr: '1e-3'}}\n"),
    "decodable-off": (False, BASE.replace("demo}", "demo, quality: {decodable: off}}")),
    "pretrained-zero": (False, BASE.replace("image_size: 32", "pretrained: 0")),
    "version-true": (False, BASE.replace("cvspec: 1", "cvspec: true")),
    "epochs-bool": (False, BASE + "train: {epochs: true}\n"),
}


def test_the_schema_and_validate_agree(tmp_path: Path) -> None:
    """What an editor marks red (the schema) is what `cvspec validate` rejects, and back."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    checker = tool("check-jsonschema")
    specs = tmp_path / "specs"
    specs.mkdir()
    (tmp_path / ".git").mkdir()
    (specs / "_base.yaml").write_text(BASE)  # the children replace project.name
    for name, (_, text) in AGREEMENT.items():
        (specs / f"{name}.yaml").write_text(text)
    files = [f"specs/{name}.yaml" for name in AGREEMENT]
    checked = subprocess.run(
        [checker, "-o", "json", "--schemafile", str(REPO / SCHEMA_PATH), *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(checked.stdout)
    assert report["parse_errors"] == []
    rejected = {e["filename"] for e in report["errors"]}
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = list(pool.map(lambda f: cvspec("validate", f, cwd=tmp_path), files))
    found = {
        name: (file not in rejected, run.code == 0)
        for name, file, run in zip(AGREEMENT, files, runs, strict=True)
    }
    expected = {name: (valid, valid) for name, (valid, _) in AGREEMENT.items()}
    assert found == expected, {f: r.err for f, r in zip(files, runs, strict=True) if r.err}
