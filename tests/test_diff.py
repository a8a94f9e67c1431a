"""`cvspec diff`: what `check` finds, as a patch of exactly what `cvspec build` would change."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from helpers import MINIMAL_SPEC, cvspec, project, snapshot

from cvspec.generate.diff import colored

SWEEP_SPEC = MINIMAL_SPEC + "train: {sweep: {train.optimizer.lr: [0.1, 0.01]}}\n"


def _git_apply(root: Path, patch: str) -> None:
    git = shutil.which("git")
    assert git, "git is needed to apply the diff"
    subprocess.run([git, "apply", "-"], cwd=root, input=patch, text=True, check=True)


def test_no_difference_prints_nothing_and_exits_0(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    result = cvspec("diff", cwd=root)
    assert (result.code, result.out, result.err) == (0, "", "")


def test_a_spec_change_shows_each_changed_line_and_the_patch_is_the_build(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, SWEEP_SPEC)
    assert cvspec("build", cwd=root).code == 0
    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC.replace("image_size: 32", "image_size: 64"))
    before = snapshot(root / "generated")
    result = cvspec("diff", cwd=root)
    assert result.code == 1
    assert snapshot(root / "generated") == before, "diff wrote something"
    out = result.out
    assert "# drift: generated/demo/train/config.yaml: the spec changed; output is stale\n" in out
    assert "--- a/generated/demo/train/config.yaml\n+++ b/generated/demo/train/config.yaml\n" in out
    assert "\n-  image_size: 32\n+  image_size: 64\n" in out
    assert "--- a/generated/demo/train/experiment/point-000.yaml\n+++ /dev/null\n" in out
    assert out.index("generated/demo/cvspec.lock") > out.index("train/config.yaml"), "lock last"
    assert "demo: " in result.err and "`cvspec build` makes these changes" in result.err

    _git_apply(root, out)
    assert cvspec("check", cwd=root).code == 0, "applying the diff is not what build does"
    applied = snapshot(root / "generated")
    assert cvspec("build", cwd=root).code == 0
    assert snapshot(root / "generated") == applied


def test_missing_edited_and_stray_files(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    out = root / "generated/demo"
    config = out / "train/config.yaml"
    config.write_text(config.read_text().replace("epochs: 10", "epochs: 99"))
    (out / ".gitattributes").unlink()
    (out / "notes.txt").write_text("mine\n")
    result = cvspec("diff", cwd=root)
    assert result.code == 1
    assert "--- /dev/null\n+++ b/generated/demo/.gitattributes\n@@ -0,0 +1,2 @@\n" in result.out
    assert (
        "# tamper: generated/demo/train/config.yaml: edited by hand; `build` keeps it, "
        "`build --force` makes this change\n" in result.out
    )
    assert "\n-  epochs: 99\n+  epochs: 10\n" in result.out
    assert "# orphan: generated/demo/notes.txt: not made by cvspec: left in place\n" in result.out
    assert "notes.txt\n---" not in result.out and "+++ /dev/null" not in result.out
    assert "only with --force" in result.err


def test_a_file_without_a_last_newline_gets_gits_marker(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    config = root / "generated/demo/train/config.yaml"
    config.write_text(config.read_text().rstrip("\n"))
    result = cvspec("diff", cwd=root)
    assert result.code == 1
    assert "\\ No newline at end of file\n" in result.out
    _git_apply(root, result.out)
    assert cvspec("check", cwd=root).code == 0


def test_diff_uses_the_options_the_build_recorded_unless_given(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + "profiles: {ci: {train: {epochs: 1}}}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", "--profile", "ci", cwd=root).code == 0
    assert cvspec("diff", cwd=root).code == 0
    plain = cvspec("diff", "--set", "train.epochs=3", cwd=root)
    assert plain.code == 1 and "\n-  epochs: 1\n+  epochs: 3\n" in plain.out
    assert "`cvspec build --set train.epochs=3` makes these changes" in plain.err


def test_a_deleted_spec_shows_its_project_removed(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    (root / "specs/demo.yaml").rename(root / "specs/demo2.yaml")
    renamed = (root / "specs/demo2.yaml").read_text().replace("name: demo", "name: demo2")
    (root / "specs/demo2.yaml").write_text(renamed)
    result = cvspec("diff", cwd=root)
    assert result.code == 1
    assert "--- a/generated/demo/train/config.yaml\n+++ /dev/null\n" in result.out
    assert "--- /dev/null\n+++ b/generated/demo2/train/config.yaml\n" in result.out
    _git_apply(root, result.out)
    assert cvspec("check", cwd=root).code == 0


def test_an_invalid_spec_is_the_usual_located_error(tmp_path: Path) -> None:
    root = project(tmp_path, MINIMAL_SPEC + "trian: {}\n")
    result = cvspec("diff", cwd=root)
    assert result.code == 2
    assert "specs/demo.yaml:6:1: error[unknown-key]" in result.err and result.out == ""


def test_colors_follow_git() -> None:
    lines = ["# drift: a: why\n", "--- a/a\n", "+++ b/a\n", "@@ -1 +1 @@\n", "-x\n", "+y\n", " z\n"]
    shown = list(colored(lines))
    assert shown[4] == "\x1b[31m-x\x1b[0m\n" and shown[5] == "\x1b[32m+y\x1b[0m\n"
    assert shown[6] == " z\n"


def test_a_saved_copy_left_after_force_is_the_users_not_a_build_to_run(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    config = root / "generated/demo/train/config.yaml"
    config.write_text(config.read_text() + "# mine\n")
    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC.replace("image_size: 32", "image_size: 64"))
    assert cvspec("build", "--force", cwd=root).code == 0
    for command in ("check", "diff"):
        result = cvspec(command, cwd=root)
        assert result.code == 1, command
        said = result.out + result.err
        assert "generated/demo/train/config.yaml.orig" in said
        assert "1 file(s) a build leaves to you" in said
        assert "cvspec build" not in said, f"{command} sends the user to a build that does nothing"


def test_a_symbolic_link_is_never_read_through(tmp_path: Path) -> None:
    """A link committed under generated/ must not make check, diff (which CI runs on pull
    requests) or build --force read, print or copy the file it points at."""
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=abc123\n")
    config = root / "generated/demo/train/config.yaml"
    config.unlink()
    config.symlink_to(secret)
    (root / "generated/demo/stray.yaml").symlink_to(secret)
    for command in ("check", "diff"):
        result = cvspec(command, cwd=root)
        said = result.out + result.err
        assert result.code == 1 and "abc123" not in said, command
        assert "generated/demo/train/config.yaml: a symbolic link where cvspec writes" in said
        assert "generated/demo/stray.yaml: a symbolic link where cvspec writes" in said
    forced = cvspec("build", "--force", cwd=root)
    assert forced.code == 0, forced.err
    saved = root / "generated/demo/train/config.yaml.orig"
    assert saved.is_symlink() and not config.is_symlink()
    assert "abc123" not in config.read_text()
    assert (root / "generated/demo/stray.yaml").is_symlink()  # not cvspec's: left in place


def test_check_and_diff_say_whether_a_change_retrains(tmp_path: Path) -> None:
    """A reviewer sees whether the next training run starts afresh or reuses its run: by the
    run id's own rules (train.workers is not in it; data.exclude acts through the images)."""
    spec = MINIMAL_SPEC + "train: {epochs: 10, workers: 2}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    (root / "specs/demo.yaml").write_text(spec.replace("workers: 2", "workers: 3"))
    checked = cvspec("check", cwd=root)
    assert checked.code == 1
    assert "  training: finished runs are reused: only train.workers changed\n" in checked.out
    (root / "specs/demo.yaml").write_text(spec.replace("epochs: 10", "epochs: 12"))
    diffed = cvspec("diff", cwd=root)
    assert diffed.code == 1
    assert diffed.out.startswith(
        "# training (demo): the next training run retrains: train.epochs changed\n"
    )
    _git_apply(root, diffed.out)  # the note is a comment: the patch still applies
    assert cvspec("check", cwd=root).code == 0
    (root / "specs/demo.yaml").write_text(
        spec.replace("epochs: 10", "epochs: 12").replace(
            "data: {path: ../data/demo}", "data: {path: ../data/demo, exclude: [a/]}"
        )
    )
    noted = cvspec("check", cwd=root).out
    assert "training: data.exclude changed: a run retrains only if that changes its" in noted


def test_a_sweep_point_that_changes_retrains_though_the_base_config_does_not(
    tmp_path: Path,
) -> None:
    spec = MINIMAL_SPEC + "train: {workers: 2, sweep: {train.optimizer.lr: [0.001, 0.003]}}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    changed = spec.replace("workers: 2", "workers: 3").replace("0.003]", "0.01]")
    (root / "specs/demo.yaml").write_text(changed)
    checked = cvspec("check", cwd=root)
    assert (
        "  training: the next training run retrains: train.optimizer.lr (sweep point-001) "
        "changed\n" in checked.out
    )
    (root / "specs/demo.yaml").write_text(spec.replace("0.003]", "0.003, 0.01]"))  # a point more
    assert "train.optimizer.lr (sweep point-002) changed" in cvspec("check", cwd=root).out


def test_a_sweep_points_value_the_run_id_leaves_out_retrains_nothing(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC + "train: {sweep: {train.workers: [1, 2]}}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    (root / "specs/demo.yaml").write_text(spec.replace("[1, 2]", "[1, 3]"))
    checked = cvspec("check", cwd=root)
    assert checked.code == 1
    assert (
        "  training: finished runs are reused: only train.workers (sweep point-001) changed\n"
        in checked.out
    ), checked.out


def test_a_project_never_built_says_nothing_about_retraining(tmp_path: Path) -> None:
    """Before the first build there is no training config to compare: a sweep's points are not
    'changed' values (as `cvspec init --example digits` then `check` showed)."""
    root = project(tmp_path, SWEEP_SPEC)
    checked = cvspec("check", cwd=root)
    assert checked.code == 1
    assert "missing  generated/demo/train/experiment/point-000.yaml" in checked.out
    assert "training:" not in checked.out, checked.out
    assert "# training" not in cvspec("diff", cwd=root).out


def test_a_renamed_project_says_its_next_training_run_retrains(tmp_path: Path) -> None:
    """A rename moves the runs folder (runs/<project>): the next run finds no finished run and
    trains afresh. The new project was never built, so its config is compared with the one the
    spec made under its old name, in text and JSON alike (the note said nothing before)."""
    spec = MINIMAL_SPEC + "train: {epochs: 10}\n"
    root = project(tmp_path, spec)
    assert cvspec("build", cwd=root).code == 0
    (root / "specs/demo.yaml").write_text(spec.replace("name: demo", "name: demo2"))
    diffed = cvspec("diff", cwd=root)
    assert diffed.code == 1
    assert diffed.out.startswith(
        "# training (demo2): the next training run retrains: output.root changed\n"
    ), diffed.out[:300]
    assert diffed.out.count("# training") == 1  # not for the old project's removal
    (root / "specs/demo.yaml").write_text(
        spec.replace("name: demo", "name: demo2").replace("epochs: 10", "epochs: 12")
    )
    out = json.loads(cvspec("diff", "--format", "json", cwd=root).out)
    notes = {p["project"]: p["training"] for p in out["projects"]}
    assert notes == {
        "demo2": "the next training run retrains: train.epochs, output.root changed",
        "demo": None,
    }
    checked = cvspec("check", cwd=root)  # check says it the same way
    assert checked.code == 1
    assert (
        "  training: the next training run retrains: train.epochs, output.root changed"
        in checked.out
    )
    checked_json = json.loads(cvspec("check", "--format", "json", cwd=root).out)
    assert {p["project"]: p["training"] for p in checked_json["projects"]} == notes
