"""`cvspec init --example digits|shapes DIR` writes a ready project that needs no download."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from helpers import REPO, cvspec
from PIL import Image

from cvspec.data.index import build_index
from cvspec.examples import spec_path
from cvspec.spec import load_spec


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_packaged_specs_match_the_repository_examples(name: str) -> None:
    assert spec_path(name).read_bytes() == (REPO / "specs" / f"{name}.yaml").read_bytes()


def test_init_digits_writes_the_uci_digits_and_keeps_existing_files(tmp_path: Path) -> None:
    result = cvspec("init", "--example", "digits", "proj", cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out == (
        "wrote proj/specs/digits.yaml\n"
        "wrote proj/.gitignore (runs/, dvc_plots/)\n"
        "wrote 1,797 files under proj/data/digits\n"
        "data.versioning is dvc, so the CI jobs `dvc pull` data/digits; set DVC up once in proj "
        "(`dvc init` needs a git repository):\n"
        "  git init\n"  # proj is in none: dvc init would refuse it
        "  dvc init\n"
        "  dvc add data/digits\n"
        "  dvc remote add -d storage URL   # e.g. s3://bucket/path; its kind goes in "
        "ci.dvc_remote\n"
        "  # its credentials, if it needs any: `dvc remote modify --local storage KEY VALUE`\n"
        "  # (.dvc/config.local, which git ignores), never in .dvc/config, which is committed\n"
        "  dvc push\n"
        '  git add .dvc data/digits.dvc data/.gitignore && git commit -m "Version data/digits with '
        'DVC"\n'
        "next: cd proj && cvspec run specs/digits.yaml --stage data\n"
    )
    root = tmp_path / "proj"
    assert (root / "specs/digits.yaml").read_bytes() == spec_path("digits").read_bytes()
    images = sorted((root / "data/digits").rglob("*.png"))
    assert Counter(p.parent.name for p in images) == {
        "0": 178,
        "1": 182,
        "2": 177,
        "3": 183,
        "4": 181,
        "5": 182,
        "6": 181,
        "7": 179,
        "8": 174,
        "9": 180,
    }
    with Image.open(root / "data/digits/0/0000.png") as img:
        assert (img.size, img.mode) == ((8, 8), "L")
        assert img.getextrema() == (0, 239)  # ink counts 0..16 scaled to 0..255
    (root / ".git").mkdir()  # a git repository now: dvc init is the first step
    in_git = cvspec("init", "--example", "digits", "proj", cwd=tmp_path)
    assert in_git.code == 0, in_git.err
    assert "set DVC up once in proj (a git repository):\n  dvc init\n" in in_git.out
    (root / "specs/digits.yaml").write_text("# mine\n")
    again = cvspec("init", "--example", "digits", "proj", cwd=tmp_path)
    assert again.code == 0
    assert again.out.splitlines()[:2] == [
        "kept proj/specs/digits.yaml: it differs from the example spec and is never overwritten",
        "wrote 0 files under proj/data/digits, kept 1,797 that existed",
    ]
    assert (root / "specs/digits.yaml").read_text() == "# mine\n"
    assert (
        (root / ".gitignore")
        .read_text()
        .endswith("\nruns/\n# what `dvc plots show` writes\ndvc_plots/\n")
    )
    assert ".gitignore" not in again.out  # already ignored: left as it is


def test_new_and_init_add_runs_to_an_existing_gitignore_once(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("*.pyc")  # no last newline
    first = cvspec("new", "cats", cwd=tmp_path)
    assert first.code == 0 and f"added runs/, dvc_plots/ to {tmp_path / '.gitignore'}" in first.out
    assert (tmp_path / ".gitignore").read_text().startswith("*.pyc\n# what `cvspec run` writes")
    before = (tmp_path / ".gitignore").read_text()
    assert cvspec("init", "--example", "digits", ".", cwd=tmp_path).code == 0
    assert (tmp_path / ".gitignore").read_text() == before


def test_a_gitignore_that_ignores_runs_gets_only_dvc_plots(tmp_path: Path) -> None:
    """`dvc plots show` writes dvc_plots/ beside the repository's dvc.yaml plots: a project
    made before it was ignored gets that line alone, once."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("/runs\n")
    first = cvspec("new", "cats", cwd=tmp_path)
    assert first.code == 0 and f"added dvc_plots/ to {tmp_path / '.gitignore'}" in first.out
    assert (tmp_path / ".gitignore").read_text() == (
        "/runs\n# what `dvc plots show` writes\ndvc_plots/\n"
    )
    again = cvspec("new", "dogs", cwd=tmp_path)
    assert again.code == 0 and ".gitignore" not in again.out


def test_runs_is_added_to_a_windows_or_latin1_gitignore_as_it_is_written(tmp_path: Path) -> None:
    """CRLF line ends stay CRLF, and bytes that are not UTF-8 stay as they were (no crash)."""
    (tmp_path / ".git").mkdir()
    ignore = tmp_path / ".gitignore"
    ignore.write_bytes(b"*.pyc\r\ncaf\xe9/\r\n")
    first = cvspec("new", "cats", cwd=tmp_path)
    assert first.code == 0, first.err
    assert ignore.read_bytes() == (
        b"*.pyc\r\ncaf\xe9/\r\n"
        b"# what `cvspec run` writes: models, reports (DVC and CI artifacts keep them)\r\nruns/\r\n"
        b"# what `dvc plots show` writes\r\ndvc_plots/\r\n"
    )
    again = cvspec("new", "dogs", cwd=tmp_path)
    assert again.code == 0 and ".gitignore" not in again.out


@pytest.mark.slow
def test_digits_example_passes_its_own_data_checks(tmp_path: Path) -> None:
    assert cvspec("init", "--example", "digits", ".", cwd=tmp_path).code == 0
    result = cvspec("run", "specs/digits.yaml", "--stage", "data", cwd=tmp_path)
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "runs/digits/data/report.json").read_text())
    assert report["images"] == {
        "total": 1797,
        "decoded": 1797,
        "train": 1255,
        "val": 284,
        "test": 258,
    }
    leakage = next(c for c in report["checks"] if c["name"] == "leakage")
    assert leakage["findings"] == [
        {
            "path": "6/1421.png",
            "related": ["6/0234.png"],
            "message": "test image nearly identical to a train image (2 bits apart)",
        }
    ]


def test_init_shapes_writes_a_yolo_dataset_that_passes_its_checks(tmp_path: Path) -> None:
    result = cvspec("init", "--example", "shapes", str(tmp_path), cwd=tmp_path)
    assert result.code == 0, result.err
    assert "wrote 321 files under" in result.out
    assert "set DVC up" not in result.out and "dvc pull" not in result.out  # data not in DVC
    loaded = load_spec(tmp_path / "specs/shapes.yaml")
    index = build_index(loaded.spec, tmp_path / "data/shapes")
    assert index.classes == ("circle", "square", "triangle")
    assert Counter(r.split for r in index.records) == {"train": 120, "val": 40}
    assert index.problems == ()
    assert all(r.boxes and (r.width, r.height, r.mode) == (128, 128, "RGB") for r in index.records)
    checked = cvspec("run", "specs/shapes.yaml", "--stage", "data", cwd=tmp_path)
    assert checked.code == 0, checked.err


def test_init_rejects_an_unknown_example(tmp_path: Path) -> None:
    result = cvspec("init", "--example", "cats", "x", cwd=tmp_path)
    assert result.code == 2
    text = " ".join(result.err.replace("│", " ").split())
    assert "Invalid value for '--example' / '-e':" in text
    assert "'cats' is not one of 'digits', 'shapes'." in text
    assert not (tmp_path / "x").exists()


def test_init_in_the_current_folder_suggests_no_cd(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    result = cvspec("init", "--example", "digits", ".", cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.endswith("next: cvspec run specs/digits.yaml --stage data\n")


@pytest.mark.slow
def test_the_printed_dvc_steps_let_the_ci_jobs_pull_the_data(tmp_path: Path) -> None:
    """Follow init's DVC steps with a local remote, then pull as the CI jobs do in a clone."""
    import os
    import shutil
    import subprocess
    import sys

    from ruamel.yaml import YAML

    dvc, git = shutil.which("dvc", path=str(Path(sys.executable).parent)), shutil.which("git")
    if dvc is None or git is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dvc and git must be installed in CI (pip install 'cvspec[ops]')")
        pytest.skip("dvc or git is not installed")
    env = {
        **os.environ,
        "PATH": f"{Path(dvc).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        **{
            f"GIT_{w}_{k}": v
            for w in ("AUTHOR", "COMMITTER")
            for k, v in (("NAME", "t"), ("EMAIL", "t@t"))
        },
    }

    def sh(script: str, cwd: Path) -> None:
        proc = subprocess.run(
            ["bash", "-ec", script], cwd=cwd, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{script}\n{proc.stdout}{proc.stderr}"

    root = tmp_path / "proj"
    root.mkdir()
    sh("git init -q", root)
    result = cvspec("init", "--example", "digits", ".", cwd=root)
    assert result.code == 0, result.err
    assert cvspec("build", cwd=root).code == 0
    lines = result.out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("data.versioning is dvc"))
    steps = [line.strip() for line in lines[start + 1 :] if line.startswith("  ")]
    steps = [s for s in steps if not s.startswith("#")]  # the credentials note: a shell's too
    assert [s.split()[:2] for s in steps] == [
        ["dvc", "init"],
        ["dvc", "add"],
        ["dvc", "remote"],
        ["dvc", "push"],
        ["git", "add"],
    ]
    remote = tmp_path / "remote"
    for step in steps:
        sh(step.replace(" URL ", f" {remote} "), root)
    sh("git add -A specs generated .gitignore && git commit -qm 'the project'", root)
    clone = tmp_path / "clone"
    sh(f"git clone -q {root} {clone}", tmp_path)
    assert not (clone / "data/digits").exists()
    pipeline = YAML(typ="safe").load((clone / "generated/digits/ci/gitlab-ci.yml").read_text())
    variables = pipeline[".digits:base"]["variables"]
    env["CVSPEC_DATA"] = variables["CVSPEC_DATA"]["value"]
    (pull,) = {
        line
        for key, job in pipeline.items()
        for line in job.get("script", [])
        if line.startswith("dvc pull")
    }
    sh(pull, clone)
    assert len(list((clone / "data/digits").rglob("*.png"))) == 1797
