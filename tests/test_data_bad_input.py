"""Bad files become findings that name the file, never a crash or a hang."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from helpers import cvspec, write_tree
from test_data_checks import encode

from cvspec.data.analyze import analyze, parallel_map, process_pool
from cvspec.data.files import FileFacts, probe
from cvspec.data.index import build_index
from cvspec.errors import CvspecError
from cvspec.spec import load_spec
from cvspec.testing.data import synthetic_image

SPEC = """\
cvspec: 1
project: {name: bad}
task: classification
data: {path: ../data, splits: {val: 0.01, test: 0.0}}
model: {arch: timm/resnet18, image_size: 32}
"""


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but holds one tiny IDAT chunk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))


def bad_tree(root: Path) -> Path:
    good = encode(synthetic_image(0))
    jpeg = encode(synthetic_image(1, 256), "JPEG")
    write_tree(
        root,
        {
            "specs/bad.yaml": SPEC,
            "data/a/good.png": good,
            "data/a/b_good.png": encode(synthetic_image(2)),
            "data/a/empty.png": b"",
            "data/a/text.jpg": "this is not a JPEG\n",
            "data/a/truncated.jpg": jpeg[: len(jpeg) // 2],
            "data/a/bomb.png": png_header_only(30_000, 30_000),
            "data/a/bomb_small.png": png_header_only(12_000, 12_000),
            "data/b/1.png": good,
            "data/empty_class": {},
        },
    )
    data = root / "data"
    os.symlink("loop2.png", data / "a/loop1.png")
    os.symlink("loop1.png", data / "a/loop2.png")
    os.symlink("missing.png", data / "a/dangling.png")
    os.symlink(".", data / "a/self")  # a folder link loop
    os.symlink("../b", data / "b/again")  # a folder that links back to itself
    return root


EXPECTED = {
    "a/bomb.png": "decompression bomb: more than 100,000,000 pixels",
    "a/bomb_small.png": "decompression bomb: more than 100,000,000 pixels",
    "a/dangling.png": "cannot read: No such file or directory",
    "a/empty.png": "empty file (0 bytes)",
    "a/loop1.png": "cannot read: Too many levels of symbolic links",
    "a/loop2.png": "cannot read: Too many levels of symbolic links",
    "a/text.jpg": "not an image (PIL cannot identify the format)",
}


@pytest.mark.timeout(60)
def test_bad_files_are_named_by_the_fast_index_and_the_full_decode(tmp_path: Path) -> None:
    root = bad_tree(tmp_path)
    spec = load_spec(root / "specs/bad.yaml").spec
    index = build_index(spec, root / "data")
    assert index.classes == ("a", "b", "empty_class")
    paths = [r.path for r in index.records]
    assert paths == sorted([*EXPECTED, "a/b_good.png", "a/good.png", "a/truncated.jpg", "b/1.png"])
    facts = {p: probe(root / "data" / p) for p in paths}
    assert {p: f.error for p, f in facts.items() if f.error} == EXPECTED
    assert facts["a/truncated.jpg"] == FileFacts(facts["a/truncated.jpg"].sha256, 256, 256, "RGB")
    full = dict(zip(paths, analyze(root / "data", paths), strict=True))
    errors = {p: f.error for p, f in full.items() if f.error}
    assert errors.pop("a/truncated.jpg").startswith(
        "does not decode: OSError: image file is truncated"
    )
    assert errors == EXPECTED


@pytest.mark.timeout(120)
def test_data_stage_reports_every_bad_file_and_fails(tmp_path: Path) -> None:
    root = bad_tree(tmp_path)
    (root / ".git").mkdir()
    result = cvspec("run", "specs/bad.yaml", "--stage", "data", cwd=root)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    for path, why in EXPECTED.items():
        assert f"  {path}: {why}" in result.err
    assert " ".join(result.err.split()).endswith(
        "failed: min_images_per_class, decodable (see runs/bad/data/report.md)"
    )
    assert "  empty_class: 0 images (at least 1 needed)" in result.err


def crash(path: str) -> None:
    """Die like a decoder that segfaults."""
    os._exit(3)


@pytest.mark.timeout(60)
def test_a_dying_worker_is_an_error_not_a_hang() -> None:
    with process_pool(100, processes=2) as pool:
        assert pool is not None
        with pytest.raises(CvspecError, match="a worker process died while decoding images"):
            list(parallel_map(crash, ["x.png"] * 100, pool))
