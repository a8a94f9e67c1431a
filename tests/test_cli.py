"""Commands other than build/check: validate, explain, new; exit codes; import weight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, cvspec, project, write_tree

HEAVY = ("torch", "timm", "ultralytics", "hydra", "dvc", "docker", "onnxruntime", "omegaconf")


def test_validate_reports_each_spec(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = cvspec("validate", cwd=root)
    assert result.code == 0
    assert result.out == "ok specs/demo.yaml (classification, project demo, 1 warning(s))\n"
    assert "warning[no-receiver]" in result.err  # a warning never fails validation


def test_yaml_1_2_scalars(tmp_path: Path) -> None:
    spec = (
        MINIMAL_SPEC.replace("{name: demo}", "{name: demo, description: no}")
        + "train: {optimizer: {lr: 1e-3}}\n"
    )
    root = project(tmp_path, spec)
    result = cvspec("explain", "specs/demo.yaml", "project.description", cwd=root)
    assert result.out.startswith('project.description = "no"')
    lr = cvspec("explain", "specs/demo.yaml", "train.optimizer.lr", cwd=root)
    assert lr.out.startswith("train.optimizer.lr = 0.001")


def test_explain_names_every_source(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "cvspec: 1\nextends: _base.yaml\nproject: {name: demo}\n"
        "task: classification\ndata: {path: d}\n"
        "profiles: {ci: {train: {epochs: 1}}}\n",
        extra={"specs/_base.yaml": "model: {arch: timm/resnet18}\ntrain: {seed: 3}\n"},
    )
    result = cvspec(
        "explain", "specs/demo.yaml", "--profile", "ci", "--set", "train.batch_size=8", cwd=root
    )
    assert result.code == 0, result.err
    rows = {line.split(" = ")[0]: line.rsplit("# ", 1)[1] for line in result.out.splitlines()}
    assert rows["project.name"] == "specs/demo.yaml:3"
    assert rows["model.arch"] == "specs/_base.yaml:1"
    assert rows["train.seed"] == "specs/_base.yaml:2"
    assert rows["train.epochs"] == "profile ci (specs/demo.yaml:6)"
    assert rows["train.batch_size"] == "--set train.batch_size=8"
    assert rows["train.optimizer.lr"] == "default"
    long = cvspec("explain", "specs/demo.yaml", "--set", f"data.exclude={['x' * 30] * 5}", cwd=root)
    lines = long.out.splitlines()
    assert (
        long.code == 0 and len({line.index("  # ") for line in lines if "exclude" not in line}) == 1
    )
    assert max(len(line) for line in lines if "exclude" not in line) < 100  # not padded to it


def test_explain_format_json_gives_each_value_and_where_it_came_from(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        "cvspec: 1\nextends: _base.yaml\nproject: {name: demo}\n"
        "task: classification\ndata: {path: d}\n"
        "profiles: {ci: {train: {epochs: 1}}}\n"
        "train: {sweep: {train.optimizer.lr: [0.1, 0.01]}}\n",
        extra={"specs/_base.yaml": "model: {arch: timm/resnet18}\ntrain: {seed: 3}\n"},
    )
    result = cvspec(
        "explain", "specs/demo.yaml", "--profile", "ci", "--set", "train.batch_size=8",
        "--format", "json", cwd=root,
    )  # fmt: skip
    assert (result.code, result.err) == (0, ""), result.err
    report = json.loads(result.out)
    rows = {r["key"]: r for r in report["values"]}
    assert report["spec"] == "specs/demo.yaml"
    assert rows["model.arch"] | {"origin": None} == {
        "key": "model.arch", "value": "timm/resnet18", "origin": None,
        "file": "specs/_base.yaml", "line": 1, "col": 15, "swept": None,
    }  # fmt: skip
    assert (rows["train.epochs"]["value"], rows["train.epochs"]["origin"]) == (
        1,
        "profile ci (specs/demo.yaml:6)",
    )
    assert rows["train.batch_size"]["file"] is None and rows["train.batch_size"]["value"] == 8
    assert rows["train.optimizer.lr"]["swept"] == [0.1, 0.01]
    assert rows["train.optimizer.momentum"] | {"value": None} == {
        "key": "train.optimizer.momentum", "value": None, "origin": "default",
        "file": None, "line": 0, "col": 0, "swept": None,
    }  # fmt: skip
    missing = cvspec("explain", "specs/demo.yaml", "nokey", "--format", "json", cwd=root)
    assert missing.code == 2 and json.loads(missing.out)["error"].startswith("no key 'nokey'")


def test_explain_unknown_key_suggests(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = cvspec("explain", "specs/demo.yaml", "train.epoch", cwd=root)
    assert result.code == 2
    assert (
        result.err == "error: no key 'train.epoch' in the resolved spec; did you mean "
        "'train.epochs'?\n"
    )


def test_interpolation_resolves_references(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC.replace(
        "{name: demo}", "{name: demo, description: 'model ${project.name}'}"
    )
    root = project(tmp_path, spec + "deploy: {image: '${project.name}'}\n")
    result = cvspec("explain", "specs/demo.yaml", "project.description", cwd=root)
    assert result.out.startswith('project.description = "model demo"'), result.err


def test_new_writes_starter_specs_that_validate(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    for task in ("classification", "detection"):
        name = f"my-{task[:3]}"
        result = cvspec("new", name, "--task", task, cwd=tmp_path)
        assert result.code == 0, result.err
        text = (tmp_path / "specs" / f"{name}.yaml").read_text()
        assert text.startswith("# yaml-language-server: $schema=../schemas/cvspec.schema.json\n")
        assert cvspec("validate", f"specs/{name}.yaml", cwd=tmp_path).code == 0
    again = cvspec("new", "my-cla", cwd=tmp_path)
    assert again.code == 2 and "already exists" in again.err
    hint = "`cvspec schema` writes it"
    assert hint in result.out  # the modeline's schema is not there yet
    assert cvspec("schema", cwd=tmp_path).code == 0
    assert hint not in cvspec("new", "third", cwd=tmp_path).out


def test_the_starter_specs_ci_profile_comment_suggests_a_command_that_leaves_check_clean(
    tmp_path: Path,
) -> None:
    """The ci profile is for CI's pull-request jobs and local runs: a tree built with it is a
    preview `check` warns about, so the starter's comment must not suggest that build."""
    (tmp_path / ".git").mkdir()
    assert cvspec("new", "cats", cwd=tmp_path).code == 0
    line = next(x for x in (tmp_path / "specs/cats.yaml").read_text().splitlines() if "  ci: " in x)
    comment = line.split("# ", 1)[1]
    assert "cvspec build --profile" not in comment and "cvspec run" in comment, line
    assert cvspec("build", cwd=tmp_path).code == 0
    checked = cvspec("check", cwd=tmp_path)
    assert (checked.code, checked.err) == (0, "")
    assert cvspec("build", "--profile", "ci", cwd=tmp_path).code == 0
    assert "--profile" in cvspec("check", cwd=tmp_path).err  # what the old comment led to


def test_validate_warns_at_each_value_still_left_as_todo(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert cvspec("new", "cats", cwd=tmp_path).code == 0
    spec = tmp_path / "specs/cats.yaml"
    result = cvspec("validate", cwd=tmp_path)
    assert result.code == 0
    assert result.out == "ok specs/cats.yaml (classification, project cats, 2 warning(s))\n"
    line = spec.read_text().splitlines().index('  description: "TODO: what the model is for"') + 1
    assert result.err.startswith(
        f"specs/cats.yaml:{line}:16: warning[placeholder]: project.description is still a "
        "placeholder: 'TODO: what the model is for'\n"
    )
    assert "warning[no-receiver]: no alert reaches anyone" in result.err
    text = spec.read_text().replace("TODO: what the model is for", "Cats by breed")
    spec.write_text(text.replace("  owners: []", "  owners: []\n  contacts: {slack: '#cats'}"))
    clean = cvspec("validate", cwd=tmp_path)
    assert (clean.code, clean.err) == (0, "")
    assert clean.out == "ok specs/cats.yaml (classification, project cats)\n"


def test_a_value_the_sweep_replaces_is_a_warning_and_explain_says_so(tmp_path: Path) -> None:
    """A pull request that changes the base lr of a spec whose sweep sets lr changes no model:
    validate warns at the value, explain names the sweep; a base value the sweep also tries
    (one point trains it) is no warning."""
    sweep = "  sweep: {train.optimizer.lr: [1.0e-3, 3.0e-3]}\n"
    tried = MINIMAL_SPEC + "train:\n  optimizer: {lr: 3.0e-3}\n" + sweep
    root = project(tmp_path, tried)
    assert "sweep-shadows" not in cvspec("validate", cwd=root).err
    (root / "specs/demo.yaml").write_text(tried.replace("{lr: 3.0e-3}", "{lr: 2.0e-3}"))
    result = cvspec("validate", cwd=root)
    assert result.code == 0
    line = tried.splitlines().index("  optimizer: {lr: 3.0e-3}") + 1
    assert (
        f"specs/demo.yaml:{line}:19: warning[sweep-shadows]: train.optimizer.lr = 0.002 is never "
        "trained: train.sweep tries 0.001, 0.003 instead" in result.err
    )
    shown = cvspec("explain", "specs/demo.yaml", "train.optimizer.lr", cwd=root).out
    assert shown.strip() == (
        f"train.optimizer.lr = 0.002  # specs/demo.yaml:{line}; each run of train.sweep sets it "
        "instead (0.001, 0.003)"
    )


def test_validate_warns_at_a_mosaic_too_few_epochs_leave_room_for(tmp_path: Path) -> None:
    """ultralytics turns mosaic (and mixup) off for the last close_mosaic (10) epochs: with
    10 or fewer, as the starter spec's ci profile has, they never run."""
    (tmp_path / ".git").mkdir()
    assert cvspec("new", "boxes", "--task", "detection", cwd=tmp_path).code == 0
    spec = tmp_path / "specs/boxes.yaml"
    text = spec.read_text()
    assert "  epochs: 30\n" in text and "  ci: {train: {epochs: 1}}\n" in text
    full = cvspec("validate", "specs/boxes.yaml", cwd=tmp_path)
    assert full.code == 0 and "augment-never-runs" not in full.err  # 30 epochs: 20 with it
    line = text.splitlines().index("    - mosaic: {p: 1.0}") + 1
    profile = text.splitlines().index("  ci: {train: {epochs: 1}}") + 1
    ci = cvspec("validate", "specs/boxes.yaml", "--profile", "ci", cwd=tmp_path)
    assert ci.code == 0  # a warning never fails validation
    assert ci.out.startswith("ok specs/boxes.yaml (detection, project boxes, ")
    assert (
        f"specs/boxes.yaml:{line}:7: warning[augment-never-runs]: mosaic never runs: ultralytics "
        "turns it off for the last 10 epochs (close_mosaic), and train.epochs is 1, from profile "
        f"ci (specs/boxes.yaml:{profile})\n"
        f"{len(str(line)) * ' '} |\n"
        f"{line} |     - mosaic: {{p: 1.0}}\n"
        f"{len(str(line)) * ' '} |       ^^^^^^\n"
        "help: train for more than 10 epochs, or leave mosaic out of data.augment\n"
    ) in ci.err
    ten = cvspec("validate", "specs/boxes.yaml", "--set", "train.epochs=10", cwd=tmp_path)
    assert "mosaic never runs: " in ten.err and "train.epochs is 10, from --set" in ten.err
    eleven = cvspec("validate", "specs/boxes.yaml", "--set", "train.epochs=11", cwd=tmp_path)
    assert "augment-never-runs" not in eleven.err


def test_validate_warns_that_a_detector_trains_mixed_precision_in_fp16(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert cvspec("new", "boxes", "--task", "detection", cwd=tmp_path).code == 0
    spec = tmp_path / "specs/boxes.yaml"
    spec.write_text(spec.read_text().replace("train:\n", "train:\n  precision: bf16\n", 1))
    line = spec.read_text().splitlines().index("  precision: bf16") + 1
    result = cvspec("validate", "specs/boxes.yaml", cwd=tmp_path)
    assert result.code == 0  # a warning: the run trains, in fp16
    assert (
        f"specs/boxes.yaml:{line}:14: warning[precision-not-bf16]: a detector trains mixed "
        "precision in fp16, not bf16: ultralytics' amp uses fp16 with a gradient scaler\n"
    ) in result.err
    for other in ("fp16", "fp32"):
        plain = cvspec("validate", "specs/boxes.yaml", "--set", f"train.precision={other}",
                       cwd=tmp_path)  # fmt: skip
        assert plain.code == 0 and "precision-not-bf16" not in plain.err


def test_validate_fails_where_a_profile_breaks_a_value_of_the_spec(tmp_path: Path) -> None:
    """The generated CI validates and runs with `--profile ci`: plain `validate` must fail on
    what the profile breaks, at the value of the spec it breaks, marked with the profile."""
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}")
    spec += "train: {epochs: 10, warmup_epochs: 3}\nprofiles: {ci: {train: {epochs: 1}}}\n"
    root = project(tmp_path, spec)
    plain = cvspec("validate", "specs/demo.yaml", cwd=root)
    ci = cvspec("validate", "specs/demo.yaml", "--profile", "ci", cwd=root)
    assert (plain.code, ci.code) == (2, 2)
    assert plain.err.startswith(
        "specs/demo.yaml:6:36: error[warmup]: warmup_epochs (3) must be below epochs (1) "
        "(in profile 'ci')\n"
    )
    assert "help: profile 'ci' (specs/demo.yaml:7) sets train.epochs\n" in plain.err
    assert ci.err.startswith(
        "specs/demo.yaml:6:36: error[warmup]: warmup_epochs (3) must be below epochs (1)\n"
    )
    fixed = spec.replace("warmup_epochs: 3", "warmup_epochs: 0.5")
    (root / "specs/demo.yaml").write_text(fixed)
    assert cvspec("validate", "specs/demo.yaml", cwd=root).code == 0


def test_validate_warns_once_of_what_a_profile_adds(tmp_path: Path) -> None:
    """A warning the spec has is not repeated for each profile; one a profile adds is marked."""
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, description: TODO}")
    spec += "profiles:\n  ci: {train: {epochs: 1}}\n  prod: {project: {description: TBD}}\n"
    root = project(tmp_path, spec)
    result = cvspec("validate", "specs/demo.yaml", cwd=root)
    assert result.code == 0, result.err
    assert result.out == "ok specs/demo.yaml (classification, project demo, 3 warning(s))\n"
    assert result.err.count("placeholder: 'TODO'") == 1
    assert result.err.count("warning[no-receiver]") == 1
    assert (
        "specs/demo.yaml:8:33: warning[placeholder]: project.description is still a placeholder: "
        "'TBD' (in profile 'prod')\n"
    ) in result.err


def test_pretrained_needs_local_weights_unless_the_arch_is_a_weights_file(tmp_path: Path) -> None:
    """Nothing is downloaded: pretrained: true without model.weights fails at validate, not
    at training; a detection arch that is a .pt file carries its own weights."""
    detect = (
        "cvspec: 1\nproject: {name: boxes, contacts: {slack: '#cv'}}\ntask: detection\n"
        "data: {path: d, classes: [a]}\nmodel: {arch: ARCH, image_size: 64, pretrained: true}\n"
        "train: {epochs: 20}\n"
    )
    cls = MINIMAL_SPEC.replace("image_size: 32", "image_size: 32, pretrained: true")
    root = project(tmp_path, cls, name="cls.yaml")
    specs = {
        "cls.yaml": False,
        "cls_weights.yaml": True,
        "det_yaml.yaml": False,
        "det_pt.yaml": True,
    }
    write_tree(
        root,
        {
            "specs/cls_weights.yaml": cls.replace(
                "pretrained: true", "pretrained: true, weights: ../w.pth"
            ),
            "specs/det_yaml.yaml": detect.replace("ARCH", "ultralytics/yolov8n.yaml"),
            "specs/det_pt.yaml": detect.replace("ARCH", "ultralytics/mine.pt"),
        },
    )
    for name, valid in specs.items():
        result = cvspec("validate", f"specs/{name}", cwd=root)
        assert (result.code == 0) == valid, (name, result.err)
        if not valid:
            assert (
                "error[pretrained]: model.pretrained: true, but pretrained weights cannot be "
                in (result.err)
            )


def test_validate_warns_when_a_value_is_a_comment(tmp_path: Path) -> None:
    """`slack: #cv-alerts` is a key with a comment after it: YAML reads null, which the field
    allows, so only the no-receiver warning would hint at it."""
    spec = MINIMAL_SPEC.replace(
        "project: {name: demo}",
        "project:\n  name: demo\n  contacts:\n    slack: #cv-alerts\n    jira:  # none yet",
    )
    root = project(tmp_path, spec)
    result = cvspec("validate", "specs/demo.yaml", cwd=root)
    assert result.code == 0, result.err
    assert result.err.startswith(
        "specs/demo.yaml:5:5: warning[comment-value]: the value of project.contacts.slack is a "
        "comment (#cv-alerts), so it is empty\n"
    )
    assert "help: quote it: slack: '#cv-alerts'\n" in result.err
    assert result.err.count("comment-value") == 1  # `jira:  # none yet` is a comment as meant


def test_new_rejects_a_bad_name_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    result = cvspec("new", "Bad Name", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith("error: cannot start a spec named 'Bad Name': project.name: ")
    assert "Bad Name.yaml:" not in result.err  # no location inside a file that was not written
    assert not (tmp_path / "specs").exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert cvspec("build", "--no-such-flag", cwd=tmp_path).code == 2
    missing = cvspec("validate", "nope.yaml", cwd=tmp_path)
    assert (missing.code, missing.err) == (2, "error: spec file not found: nope.yaml\n")
    (tmp_path / "specs").mkdir()
    folder = cvspec("validate", "specs", cwd=tmp_path)
    assert (folder.code, folder.err) == (2, "error: specs is a folder; give spec files\n")
    (tmp_path / "specs").rmdir()
    empty = cvspec("validate", cwd=tmp_path)
    assert empty.code == 2 and "no spec given and no specs/*.yaml" in empty.err


def test_internal_error_is_one_line_and_exit_3(tmp_path: Path) -> None:
    site = write_tree(
        tmp_path / "site",
        {
            "crash_plugin.py": "class Gen:\n    name = 'crash'\n    version = '1'\n"
            "    def plan(self, spec, ctx):\n        return [1 / 0]\n",
            "crash-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: crash\nVersion: 1.0\n",
            "crash-1.0.dist-info/entry_points.txt": "[cvspec.generators]\n"
            "crash = crash_plugin:Gen\n",
        },
    )
    root = project(tmp_path / "repo")
    env = {"PYTHONPATH": str(site)}
    result = cvspec("build", cwd=root, env=env)
    assert result.code == 2  # a plugin's failure is named, not a cvspec bug
    assert (
        "generator 'crash' (crash_plugin:Gen, from crash 1.0) failed: ZeroDivisionError"
        in result.err
    )
    breaks = (
        "import sys; from cvspec.cli import main; "
        "import cvspec.cli.common as c; c.find_root = None; sys.exit(main(['build']))"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    bug = subprocess.run(
        [sys.executable, "-c", breaks],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(logs)},
    )
    assert bug.returncode == 3
    assert bug.stderr.startswith("cvspec: internal error (TypeError: ")
    assert "this is a bug in cvspec" in bug.stderr and "Traceback" not in bug.stderr
    (log,) = logs.glob("cvspec-crash-*.log")  # the traceback is kept, and named in the message
    assert str(log) in bug.stderr
    assert "Traceback (most recent call last)" in log.read_text() and "find_root" in log.read_text()
    debug = subprocess.run(
        [sys.executable, "-c", breaks],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"CVSPEC_DEBUG": "1", "PATH": "/usr/bin", "TMPDIR": str(logs)},
    )
    assert debug.returncode == 3 and "Traceback (most recent call last)" in debug.stderr


def test_validate_build_check_import_nothing_heavy(tmp_path: Path) -> None:
    root = project(tmp_path)
    probe = (
        "import sys, runpy\nsys.argv = ['cvspec'] + sys.argv[1:]\n"
        "from cvspec.cli import main\ncode = main(sys.argv[1:])\n"
        "import json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    for command in ("validate", "build", "check", "diff"):
        proc = subprocess.run(
            [sys.executable, "-c", probe, command],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        loaded = set(json.loads(proc.stdout.splitlines()[-1]))
        assert loaded.isdisjoint(HEAVY), f"cvspec {command} imported {loaded & set(HEAVY)}"


def test_python_dash_m_and_console_script_agree() -> None:
    exe = Path(sys.executable).parent / "cvspec"
    a = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    b = subprocess.run(
        [sys.executable, "-m", "cvspec", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert "validate" in a.stdout and a.stdout == b.stdout


def test_validate_finds_two_specs_with_one_project_name(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    spec = "cvspec: 1\nproject: {name: cats}\ntask: classification\ndata: {path: d}\n"
    spec += "model: {arch: timm/resnet18, image_size: 32}\n"
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs/a.yaml").write_text(spec)
    (tmp_path / "specs/b.yaml").write_text(spec)
    result = cvspec("validate", cwd=tmp_path)
    assert result.code == 2
    assert result.err.startswith(
        "specs/b.yaml:2:17: error[duplicate-project]: two specs define project 'cats': "
        "specs/a.yaml and specs/b.yaml"
    )


def test_an_error_in_a_shared_base_is_reported_once(tmp_path: Path) -> None:
    base = "cvspec: 1\ntask: classification\nmodel: {arch: timm/resnet18, image_sise: 32}\n"
    child = "extends: _base.yaml\nproject: {{name: {}}}\ndata: {{path: d}}\n"
    root = project(tmp_path, child.format("a"), name="a.yaml")
    write_tree(root, {"specs/_base.yaml": base, "specs/b.yaml": child.format("b")})
    result = cvspec("validate", cwd=root)
    assert result.code == 2
    assert result.err.count("error[unknown-key]") == 1, result.err
    assert result.err.startswith(
        "specs/_base.yaml:3:30: error[unknown-key]: unknown key 'image_sise' in 'model'\n"
    )
    assert result.err.endswith("\n1 error\n")


def test_set_and_explain_reach_a_list_item_as_dot_0_or_bracket_0(tmp_path: Path) -> None:
    alerts = (
        "monitor:\n  alerts:\n"
        "    - {name: Drift, metric: brightness_drift, max: 0.5}\n"
        "    - {name: Errors, metric: error_rate, max: 0.1}\n"
    )
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}")
    root = project(tmp_path, spec + alerts)
    sets = ("--set", "monitor.alerts.0.max=0.3", "--set", "monitor.alerts[1].severity=page")
    both = cvspec("explain", "specs/demo.yaml", "monitor.alerts", *sets, cwd=root)
    assert both.code == 0, both.err
    assert "monitor.alerts[0].max = 0.3  " in both.out
    assert "# --set monitor.alerts.0.max=0.3\n" in both.out
    assert 'monitor.alerts[0].name = "Drift"' in both.out  # the rest of the item stays
    assert 'monitor.alerts[1].severity = "page"' in both.out
    assert "monitor.alerts[1].max = 0.1  " in both.out
    for key in ("monitor.alerts.1.max", "monitor.alerts[1].max"):
        one = cvspec("explain", "specs/demo.yaml", key, cwd=root)
        assert one.out == "monitor.alerts[1].max = 0.1  # specs/demo.yaml:9\n", one.err
    valid = cvspec("validate", "specs/demo.yaml", *sets, cwd=root)
    assert valid.code == 0, valid.err


def test_set_reaches_a_list_item_a_profile_sets(tmp_path: Path) -> None:
    """--set flags win over the profile, so they apply after it: an item of a list only the
    profile has can be set."""
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}")
    profile = "profiles: {mon: {monitor: {alerts: [{name: Drift, metric: brightness_drift, "
    profile += "max: 0.2}]}}}\n"
    root = project(tmp_path, spec + profile)
    flag = ("--profile", "mon", "--set", "monitor.alerts[0].max=0.5")
    out = cvspec("explain", "specs/demo.yaml", "monitor.alerts[0].max", *flag, cwd=root)
    assert out.code == 0, out.err
    assert out.out == "monitor.alerts[0].max = 0.5  # --set monitor.alerts[0].max=0.5\n"
    # without the profile there is no list: the flag is still the user's error
    bare = cvspec("validate", "specs/demo.yaml", *flag[2:], cwd=root)
    assert bare.code == 2
    assert "error[bad-set]: monitor.alerts[0]: the spec has no list at monitor.alerts" in bare.err


def test_an_item_set_a_profile_not_built_lacks_does_not_fail_the_build(tmp_path: Path) -> None:
    """Each profile is checked with the --set flags too; an item flag meant for the spec
    being built is skipped for a profile whose list lacks that item."""
    alerts = "monitor:\n  alerts:\n    - {name: Drift, metric: brightness_drift, max: 0.5}\n"
    spec = MINIMAL_SPEC.replace("{name: demo}", "{name: demo, contacts: {slack: '#cv'}}")
    root = project(tmp_path, spec + alerts + "profiles: {quiet: {monitor: {alerts: []}}}\n")
    flag = ("--set", "monitor.alerts[0].max=0.3")
    for command in ("validate", "build"):
        done = cvspec(command, "specs/demo.yaml", *flag, cwd=root)
        assert done.code == 0, (command, done.err)
    shown = cvspec("explain", "specs/demo.yaml", "monitor.alerts[0].max", *flag, cwd=root)
    assert shown.out == "monitor.alerts[0].max = 0.3  # --set monitor.alerts[0].max=0.3\n"
    # building that profile with the flag is an error still
    quiet = cvspec("validate", "specs/demo.yaml", "--profile", "quiet", *flag, cwd=root)
    assert quiet.code == 2
    assert "monitor.alerts has 0 item(s), so no index 0\n" in quiet.err


def test_set_with_an_empty_mapping_empties_it(tmp_path: Path) -> None:
    """`--set train.sweep={}` turns a sweep off; a non-empty mapping still merges key by key."""
    root = project(
        tmp_path,
        "cvspec: 1\nproject: {name: demo}\ntask: classification\ndata: {path: d}\n"
        "model: {arch: timm/resnet18}\n"
        "train: {optimizer: {name: sgd, lr: 0.1}, sweep: {train.optimizer.lr: [0.1, 0.01]}}\n"
        "profiles: {ci: {train: {sweep: {}}}}\n",
    )
    off = cvspec("explain", "specs/demo.yaml", "train.sweep", "--set", "train.sweep={}", cwd=root)
    assert off.out == "train.sweep = {}  # --set train.sweep={}\n", off.err
    # in a file (here a profile) an empty mapping merges as ever: nothing changes
    kept = cvspec("explain", "specs/demo.yaml", "train.sweep", "--profile", "ci", cwd=root)
    assert "train.sweep.train.optimizer.lr = [0.1, 0.01]" in kept.out
    merged = cvspec(
        "explain", "specs/demo.yaml", "train.optimizer", "--set", "train.optimizer={lr: 0.5}",
        cwd=root,
    )  # fmt: skip
    assert 'train.optimizer.name = "sgd"' in merged.out
    assert "train.optimizer.lr = 0.5" in merged.out


def _with_closed_stdout(*args: str, cwd: Path) -> tuple[int, str]:
    """Run cvspec with stdout a pipe whose reader has gone (`cvspec ... | head -1` once head
    has its line), unbuffered as in CI: (exit code, stderr)."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CVSPEC_DEBUG", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cvspec", *args],
            cwd=cwd,
            env=env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    return proc.returncode, proc.stderr


def test_a_closed_output_pipe_exits_141_not_as_a_failed_check(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    assert cvspec("check", cwd=root).code == 0
    # click and rich exit 1 on a broken pipe: for check and diff that says "stale"
    for args in (["check"], ["validate"], ["explain", "specs/demo.yaml"], ["--help"]):
        assert _with_closed_stdout(*args, cwd=root) == (141, ""), args
    assert _with_closed_stdout("check", "--help", cwd=root) == (141, "")


def test_a_broken_pipe_that_is_not_the_output_stays_an_error() -> None:
    """Only a closed stdout or stderr is the reader leaving: a BrokenPipeError from another pipe
    (a subprocess's stdin, a socket) is still raised, so it is reported as the bug it is."""
    from cvspec.cli import _pipe_closed

    with pytest.raises(BrokenPipeError), _pipe_closed():
        raise BrokenPipeError("a subprocess's stdin")


def test_stdout_a_locale_cannot_encode_is_escaped_not_a_crash(tmp_path: Path) -> None:
    spec = MINIMAL_SPEC.replace("../data/demo}", "../data/demo, classes: [zéro, un]}")
    root = project(tmp_path, spec)
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    result = cvspec("explain", "specs/demo.yaml", "data.classes", cwd=root, env=env)
    assert (result.code, result.err) == (0, "")
    assert result.out.startswith('data.classes = ["z\\xe9ro", "un"]')


def test_validate_and_check_format_json(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok = cvspec("validate", "--format", "json", cwd=root)
    assert (ok.code, ok.err) == (0, "")
    [spec] = json.loads(ok.out)["specs"]
    assert (spec["file"], spec["task"], spec["project"]) == (
        "specs/demo.yaml",
        "classification",
        "demo",
    )
    assert {(d["severity"], d["code"]) for d in spec["diagnostics"]} == {("warning", "no-receiver")}
    missing = cvspec("check", "--format", "json", cwd=root)  # not built: every file missing
    report = json.loads(missing.out)
    assert (missing.code, missing.err, report["ok"]) == (1, "", False)
    assert {f["finding"] for f in report["projects"][0]["findings"]} == {"missing"}
    assert cvspec("build", cwd=root).code == 0
    built = cvspec("check", "--format", "json", cwd=root)
    assert (built.code, built.err, json.loads(built.out)["ok"]) == (0, "", True)

    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC + "train: {epoch: 3}\n")
    for command in ("validate", "check"):
        bad = cvspec(command, "--format", "json", cwd=root)
        assert (bad.code, bad.err) == (2, ""), command
        [diag] = json.loads(bad.out)["diagnostics"]
        assert (diag["file"], diag["line"], diag["col"]) == ("specs/demo.yaml", 6, 9)
        assert (diag["severity"], diag["code"]) == ("error", "unknown-key")
    usage = cvspec("validate", "--format", "yaml", cwd=root)
    assert (usage.code, usage.err) == (2, "error: --format yaml: use one of text, json\n")


def test_the_readmes_own_project_steps_run_as_written(tmp_path: Path) -> None:
    """A newcomer's first steps from the README, in an empty folder: new, the images where its
    comment says, validate, build and the data stage, each as the README writes it."""
    import shlex

    from test_data_checks import encode

    from cvspec.testing.data import synthetic_image

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own project\n", 1)[1].split("```sh\n", 1)[1]
    lines = [x.split("  #", 1)[0].strip() for x in section.split("```", 1)[0].splitlines()]
    images = next(x for x in lines if x.startswith("# your images: "))
    folder = images.split(": ", 1)[1].split("/<class>/", 1)[0]
    for cls in ("tabby", "siamese"):
        write_tree(
            tmp_path,
            {f"{folder}/{cls}/{i:04d}.png": encode(synthetic_image(i, 16)) for i in range(20)},
        )
    commands = [shlex.split(x) for x in lines if x.startswith("cvspec ")]
    assert [c[1] for c in commands] == [
        *("new", "validate", "build", "run", "run", "run", "serve"),
    ]
    for args in commands[:4]:  # the rest trains and serves (tests/test_train.py, test_serve.py)
        result = cvspec(*args[1:], cwd=tmp_path)
        assert result.code == 0, (args, result.err)
    assert (tmp_path / "runs/cats/data/stats.json").is_file()
    curl = next(x for x in lines if x.startswith("curl "))
    assert f"@{folder}/tabby/" in curl and "127.0.0.1:8080/predict" in curl


def _on_a_terminal(*args: str, cwd: Path) -> str:
    """Run cvspec with stdout and stderr a terminal (a pty): what a person there sees."""
    import pty

    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cvspec", *args],
        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=60) == 2
    return b"".join(chunks).decode("utf-8", "replace")


def test_usage_errors_off_a_terminal_are_plain_text_and_rich_on_one(tmp_path: Path) -> None:
    """A CI log or a pipe gets click's plain usage error, no boxes; a terminal keeps rich's."""
    typo = cvspec("validate", "--fromat", "json", cwd=tmp_path)
    assert (typo.code, typo.out) == (2, "")
    assert typo.err == (
        "Usage: cvspec validate [OPTIONS] [SPEC]...\n"
        "Try 'cvspec validate --help' for help.\n\n"
        "Error: No such option: --fromat (Possible options: --format)\n"
    )
    missing = cvspec("run", cwd=tmp_path)
    assert missing.code == 2 and missing.err.endswith("\nError: Missing argument 'SPEC'.\n")
    command = cvspec("valdate", cwd=tmp_path)
    assert command.code == 2
    assert command.err.endswith("Error: No such command 'valdate'. Did you mean 'validate'?\n")
    helped = cvspec("check", "--help", cwd=tmp_path)  # the same switch: plain help in a pipe
    assert helped.code == 0 and helped.out.startswith("Usage: cvspec check [OPTIONS] [SPEC]...")
    for text in (typo.err, missing.err, command.err, helped.out):
        assert not set("╭│╰─") & set(text), text
    shown = _on_a_terminal("validate", "--fromat", "json", cwd=tmp_path)
    assert "╭─" in shown and "No such option: " in shown and "Error:" not in shown


def test_usage_lines_name_the_spec_argument(tmp_path: Path) -> None:
    """Each command's usage line says SPEC (or NAME, FOLDER, KEY), not a Python variable."""
    expected = {
        "validate": "[OPTIONS] [SPEC]...",
        "build": "[OPTIONS] [SPEC]...",
        "check": "[OPTIONS] [SPEC]...",
        "diff": "[OPTIONS] [SPEC]...",
        "explain": "[OPTIONS] {SPEC} [KEY]",
        "templates": "[OPTIONS] {SPEC}",
        "run": "[OPTIONS] {SPEC}",
        "runs": "[OPTIONS] {SPEC}",
        "serve": "[OPTIONS] [SPEC]",
        "new": "[OPTIONS] {NAME}",
        "init": "[OPTIONS] [FOLDER]",
        "review": "[OPTIONS] {SPEC}",
        "relabel": "[OPTIONS] {SPEC} {EXPORT}",
    }
    from cvspec.cli import app

    with_arguments = {c.name for c in app.registered_commands} - {"schema", "generators"}
    assert set(expected) == with_arguments  # a new command gets its usage line checked too
    for command, usage in expected.items():
        helped = cvspec(command, "--help", cwd=tmp_path)
        assert helped.out.splitlines()[0] == f"Usage: cvspec {command} {usage}", helped.out


def test_diff_format_json_gives_each_file_its_finding_action_and_diff(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    clean = cvspec("diff", "--format", "json", cwd=root)
    assert (clean.code, clean.err) == (0, "")
    assert json.loads(clean.out)["ok"] is True
    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC.replace("image_size: 32", "image_size: 64"))
    (root / "generated/demo/notes.txt").write_text("mine\n")
    stale = cvspec("diff", "--format", "json", cwd=root)
    assert (stale.code, stale.err) == (1, "")  # the same exit code as the text diff
    [report] = json.loads(stale.out)["projects"]
    files = {f["path"]: f for f in report["files"]}
    config = files["generated/demo/train/config.yaml"]
    assert (config["finding"], config["action"]) == ("drift", "update")
    assert config["diff"].startswith("--- a/generated/demo/train/config.yaml\n+++ b/")
    assert "\n+" in config["diff"] and "64" in config["diff"]
    mine = files["generated/demo/notes.txt"]
    assert (mine["finding"], mine["action"], mine["diff"]) == ("orphan", "keep", "")
    assert report["ok"] is False and "image_size" in report["training"]
    text = cvspec("diff", cwd=root)
    assert text.code == 1 and config["diff"] in text.out  # the same hunks as the text diff
    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC + "train: {epoch: 3}\n")
    bad = cvspec("diff", "--format", "json", cwd=root)
    assert (bad.code, bad.err) == (2, "")
    assert json.loads(bad.out)["diagnostics"][0]["code"] == "unknown-key"


def _images(root: Path, classes: tuple[str, ...] = ("a", "b")) -> None:
    from test_data_checks import encode

    from cvspec.testing.data import synthetic_image

    write_tree(
        root,
        {f"data/demo/{c}/{i:04d}.png": encode(synthetic_image(i, 16)) for c in classes
         for i in range(20)},
    )  # fmt: skip


def test_run_format_json_prints_one_object_and_the_progress_on_stderr(tmp_path: Path) -> None:
    root = project(tmp_path)
    _images(root)
    ran = cvspec("run", "specs/demo.yaml", "--stage", "data", "--format", "json", cwd=root)
    assert ran.code == 0, ran.err
    report = json.loads(ran.out)  # stdout is that one object, nothing else
    assert ran.out.count("\n") == 1
    assert {k: report[k] for k in ("ok", "spec", "project", "run_id", "error", "gates")} == {
        "ok": True, "spec": "specs/demo.yaml", "project": "demo", "run_id": None,
        "error": None, "gates": None,
    }  # fmt: skip
    [stage] = report["stages"]
    assert (stage["name"], stage["ok"], stage["outputs"]) == ("data", True, ["runs/demo/data"])
    assert isinstance(stage["seconds"], float) and "checks pass" in stage["summary"]
    assert "ok data" in ran.err and "checks pass" in ran.err  # the progress, where a log has it

    (root / "data/demo/empty").mkdir()  # a class with no image: the data stage fails
    failed = cvspec("run", "specs/demo.yaml", "--stage", "data", "--format", "json", cwd=root)
    report = json.loads(failed.out)
    assert (failed.code, report["ok"], report["stages"][0]["ok"]) == (1, False, False)
    assert "min_images_per_class" in report["error"]


def test_run_format_json_gives_a_located_error(tmp_path: Path) -> None:
    root = project(tmp_path)  # data.path names a folder that is not there
    ran = cvspec("run", "specs/demo.yaml", "--stage", "data", "--format", "json", cwd=root)
    assert ran.code == 2
    report = json.loads(ran.out)
    assert (report["ok"], report["stages"], report["project"]) == (False, [], "demo")
    [diag] = report["diagnostics"]
    assert (diag["file"], diag["line"], diag["code"]) == ("specs/demo.yaml", 4, "data-missing")
    assert report["error"].startswith("data.path: no folder at ")
    assert "Traceback" not in ran.err and "no folder" not in ran.err  # said once, in the JSON
    unknown = cvspec("run", "specs/demo.yaml", "--stage", "dat", "--format", "json", cwd=root)
    assert unknown.code == 2 and json.loads(unknown.out)["error"].startswith("unknown stage")


def test_run_format_json_keeps_a_subprocess_output_off_stdout(tmp_path: Path) -> None:
    """The test stage runs pytest in a subprocess and libraries print: what either writes, to
    the file descriptor or to sys.stdout, goes to stderr, before the one JSON line."""
    code = (
        "import os, subprocess, sys\n"
        "from cvspec.cli.run import _stdout_on_stderr\n"
        "with _stdout_on_stderr():\n"
        "    print('python')\n"
        "    os.write(1, b'fd\\n')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"child\")'], check=True)\n"
        "print('{}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert proc.stdout == "{}\n"
    assert proc.stderr.split() == ["python", "fd", "child"]
