"""The render cache: a replay is byte-identical to a render, and any input change is a miss."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, snapshot, write_tree

from cvspec import project as proj
from cvspec.generate import render as render_module
from cvspec.generate.cache import RenderCache, code_deps, tree_dep, tree_signature

PARTIAL = "train: {epochs: 3}\n"
SPEC = "extends: _base.yaml\n" + MINIMAL_SPEC + "templates: ../overrides\n"
OVERRIDE = "# override {{ paths | length }}\n"


def repo(tmp_path: Path) -> Path:
    return project(
        tmp_path,
        SPEC,
        extra={
            "specs/_base.yaml": PARTIAL,
            "overrides/docker/dockerignore.j2": OVERRIDE,
        },
    )


def render(root: Path, cache: RenderCache | None, **options: object) -> dict[str, bytes]:
    render_module._ENVIRONMENTS.clear()  # as in a fresh process: Jinja keeps what it found
    paths = [root / "specs/demo.yaml"]
    outs = proj.render_all(root, paths, proj.Options(**options), cache)  # type: ignore[arg-type]
    return {f.path: f.content for out in outs for f in out.files}


def no_render(*_: object, **__: object) -> None:
    raise AssertionError("rendered although the cache should have answered")


def test_a_hit_replays_the_render_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo(tmp_path / "repo")
    cache = RenderCache(tmp_path / "cache")
    monkeypatch.chdir(root)
    cold = render(root, None)
    assert any(b"\n# override" in data for data in cold.values())  # the override is used
    assert render(root, cache) == cold  # a miss renders and stores
    assert len(list((tmp_path / "cache").glob("*/*.json.z"))) == 1
    monkeypatch.setattr(proj, "load_all", no_render)
    assert render(root, cache) == cold  # a hit: nothing was loaded or rendered


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda r: (r / "specs/demo.yaml").write_text(SPEC.replace("32", "64")), id="spec"
        ),
        pytest.param(
            lambda r: (r / "specs/_base.yaml").write_text("train: {epochs: 4}\n"), id="extends"
        ),
        pytest.param(
            lambda r: (r / "overrides/docker/dockerignore.j2").write_text("# edited\n"),
            id="template",
        ),
        pytest.param(
            lambda r: write_tree(r, {"overrides/repo/gitattributes.j2": "* -text\n"}),
            id="new-template",
        ),
    ],
)
def test_any_input_change_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: object
) -> None:
    root = repo(tmp_path / "repo")
    cache = RenderCache(tmp_path / "cache")
    monkeypatch.chdir(root)
    before = render(root, cache)
    edit(root)  # type: ignore[operator]
    after = render(root, cache)
    assert after == render(root, None)  # what a render without the cache makes
    assert after != before


def test_options_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = repo(tmp_path / "repo")
    cache = RenderCache(tmp_path / "cache")
    monkeypatch.chdir(root)
    plain = render(root, cache)
    changed = render(root, cache, sets=("train.epochs=9",))
    assert changed == render(root, None, sets=("train.epochs=9",)) != plain
    assert render(root, cache) == plain


@pytest.mark.parametrize("damage", ["garbage", "content", "format"])
def test_a_damaged_entry_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    root = repo(tmp_path / "repo")
    cache = RenderCache(tmp_path / "cache")
    monkeypatch.chdir(root)
    cold = render(root, cache)
    (entry,) = (tmp_path / "cache").glob("*/*.json.z")
    if damage == "garbage":
        entry.write_bytes(b"\x00{not json")
    else:
        body = json.loads(zlib.decompress(entry.read_bytes()))
        if damage == "content":
            body["files"][0][3] += "tampered\n"  # the digest no longer matches
        else:
            body["format"] = 999
        entry.write_bytes(zlib.compress(json.dumps(body).encode()))
    assert render(root, cache) == cold


def test_nothing_is_stored_when_an_input_changed_during_the_render(tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "templates", {"a.j2": "one"})
    dep = tree_dep(folder)
    (folder / "a.j2").write_text("two, longer")  # changed after it was signed
    cache = RenderCache(tmp_path / "cache")
    out = proj.Output("demo", "specs/demo.yaml", "generated/demo", [])
    cache.store(tmp_path, tmp_path / "specs/demo.yaml", proj.Options(), out, [dep])
    assert not (tmp_path / "cache").exists()


def test_tree_signature_follows_size_mtime_and_names(tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "pkg", {"a.py": "x = 1\n", "sub": {"b.py": "y = 2\n"}})
    first = tree_signature(folder)
    os.utime(folder / "sub/b.py", ns=(1, 1))
    touched = tree_signature(folder)
    (folder / "c.py").write_text("")
    added = tree_signature(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__/a.pyc").write_bytes(b"ignored")
    assert len({first, touched, added}) == 3
    assert tree_signature(folder) == added  # bytecode is not code
    assert tree_signature(tmp_path / "missing") == ""


def test_code_deps_cover_cvspec_itself() -> None:
    import cvspec

    package = str(Path(cvspec.__file__).resolve().parent)
    assert package in {d.path for d in code_deps()}


def test_cli_uses_the_cache_and_can_do_without(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    cached, off = tmp_path / "cache", tmp_path / "unused"
    assert cvspec("build", cwd=root, env={"CVSPEC_CACHE_DIR": str(cached)}).code == 0
    first = snapshot(root / "generated")
    env = {"CVSPEC_CACHE_DIR": str(off), "CVSPEC_NO_CACHE": "1"}
    assert cvspec("check", cwd=root, env=env).code == 0
    assert list(cached.glob("*/*.json.z")) and not off.exists()
    (root / "generated/demo/train/config.yaml").write_text("edited\n")
    result = cvspec("check", cwd=root, env={"CVSPEC_CACHE_DIR": str(cached)})
    assert result.code == 1 and "tamper  generated/demo/train/config.yaml" in result.out
    for path in sorted((root / "generated").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    assert cvspec("build", cwd=root, env={"CVSPEC_CACHE_DIR": str(cached)}).code == 0
    assert snapshot(root / "generated") == first  # replayed from the cache, byte for byte


def test_a_path_that_is_not_utf8_is_rendered_each_time_not_an_error(tmp_path: Path) -> None:
    from cvspec.generate.render import RenderedFile, sha256

    cache = RenderCache(tmp_path / "cache")
    name = "generated/d\udcffemo/x.txt"  # a file name with an undecodable byte
    out = proj.Output(
        "demo", "specs/demo.yaml", "generated/demo", [RenderedFile(name, b"x", sha256(b"x"), "t")]
    )
    cache.store(tmp_path, tmp_path / "specs/demo.yaml", proj.Options(), out, [tree_dep(tmp_path)])
    assert not list((tmp_path / "cache").glob("*/*.json.z"))  # not stored, and no error
