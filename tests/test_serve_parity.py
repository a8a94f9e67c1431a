"""The server predicts what the evaluate stage measured: same export, same images, same answers."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers import cvspec, project

from cvspec.serve.drift import WINDOW
from cvspec.serve.launch import ServerProcess

SPEC = """\
cvspec: 1
project: {name: colors}
task: classification
data: {path: ../data/colors, format: imagefolder, classes: auto,
       splits: {val: 0.2, test: 0.3, seed: 0}}
model: {arch: timm/resnet10t, image_size: 32, pretrained: false}
train: {epochs: 2, batch_size: 16, workers: 0}
evaluate: {latency: {iterations: 3, warmup: 1, threads: 1}}
"""
COLORS = {"red": (170, 60, 60), "green": (60, 170, 60), "blue": (60, 60, 170)}


def colour_images(root: Path) -> None:
    """30 noisy, seeded images per class: hard enough that two epochs leave some mistakes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in COLORS.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(30):
            noise = rng.normal(0, 140, (20, 24, 3))
            pixels = np.clip(np.asarray(rgb)[None, None, :] + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_served_predictions_match_the_evaluate_stage(tmp_path: Path) -> None:
    root = project(tmp_path, SPEC, name="colors.yaml")
    colour_images(root / "data/colors")
    stages = ("data", "train", "evaluate", "export")
    result = cvspec(
        "run",
        "specs/colors.yaml",
        *(f"--stage={s}" for s in stages),
        cwd=root,
        env={"OMP_NUM_THREADS": "2"},
        timeout=600,
    )
    assert result.code == 0, result.err[-3000:]
    runs = root / "runs/colors"
    evaluated = json.loads((runs / "evaluate/confusion.json").read_text())
    metrics = json.loads((runs / "evaluate/metrics.json").read_text())

    from cvspec.data.index import build_index
    from cvspec.spec import load_spec

    spec = load_spec(root / "specs/colors.yaml").spec
    index = build_index(spec, root / "data/colors")
    records = [r for r in index.split(metrics["split"]) if r.mode and r.label is not None]
    classes = evaluated["classes"]
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    with ServerProcess(["specs/colors.yaml", "--threads", "1"], cwd=root) as server:
        for record in records:
            answer = httpx.post(
                f"{server.url}/predict",
                content=(index.root / record.path).read_bytes(),
                headers={"content-type": "image/png"},
            )
            assert answer.status_code == 200, answer.text
            matrix[record.label, classes.index(answer.json()["predictions"][0]["label"])] += 1
        with httpx.Client() as client:  # the drift gauges appear over a full window of images
            for i in range(max(WINDOW - len(records), 0)):
                record = records[i % len(records)]
                answer = client.post(
                    f"{server.url}/predict",
                    content=(index.root / record.path).read_bytes(),
                    headers={"content-type": "image/png"},
                )
                assert answer.status_code == 200, answer.text
        drift = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in httpx.get(server.metrics_url).text.splitlines()
            if line.startswith("cvspec_input_drift{")
        }
    assert matrix.tolist() == evaluated["matrix"]
    assert (
        len(set(np.argmax(matrix, axis=1))) > 1
    )  # not a constant model: the check means something
    assert metrics["metrics"]["images"] == len(records)
    assert set(drift) == {"brightness", "contrast", "width", "height"}
    assert max(drift.values()) < 1.0, drift  # the test split looks like the training data
