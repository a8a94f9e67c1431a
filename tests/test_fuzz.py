"""Junk in, clean answer out: any YAML gives exit 0 or 2, never a crash (exit 3)."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from cvspec.cli import main

KEYS = [
    "cvspec",
    "project",
    "name",
    "task",
    "data",
    "path",
    "format",
    "classes",
    "model",
    "arch",
    "image_size",
    "train",
    "epochs",
    "sweep",
    "evaluate",
    "gates",
    "accuracy",
    "min",
    "max",
    "extends",
    "profiles",
    "monitor",
    "alerts",
    "for",
    "serve",
    "deploy",
    "augment",
    "hflip",
    "p",
    "splits",
    "val",
    "test",
    "quality",
    "ci",
    "on",
    "export",
    "templates",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "classification",
            "detection",
            "auto",
            "timm/resnet18",
            "${project.name}",
            "${nope}",
            "onnx",
            "yolo",
            "1e-3",
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=6)
    ),
    max_leaves=30,
)
VALID_BASE = {
    "cvspec": 1,
    "project": {"name": "demo"},
    "task": "classification",
    "data": {"path": "d"},
    "model": {"arch": "timm/resnet18"},
}


def _run(tmp: Path, text: str, *args: str) -> int:
    spec = tmp / "spec.yaml"
    spec.write_text(text, encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
            code = main(["validate", "spec.yaml", *args])
    finally:
        os.chdir(cwd)
    assert code in (0, 2), f"exit {code} for:\n{text}\n{err.getvalue()}"
    return code


def _dump(data: object) -> str:
    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, buf)
    return buf.getvalue()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab:{}[]-#&*!|>'\"%@`,? \n\t\\$0.")), max_size=80)
)
def test_random_text(tmp_path: Path, text: str) -> None:
    _run(tmp_path, text)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=TREES)
def test_random_trees(tmp_path: Path, tree: object) -> None:
    _run(tmp_path, _dump(tree))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra=st.dictionaries(st.sampled_from(KEYS), TREES, max_size=4),
    sets=st.lists(
        st.text(alphabet=st.sampled_from(list("abtrain.epochs=:{}[]1 ")), max_size=20), max_size=2
    ),
)
def test_mostly_valid_specs_with_overrides(
    tmp_path: Path, extra: dict[str, object], sets: list[str]
) -> None:
    args = [a for s in sets for a in ("--set", s)]
    _run(tmp_path, _dump({**VALID_BASE, **extra}), *args)
