"""The run folder: runs/<project>/train/<run-id>/ with config, metrics, checkpoints, status."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.atomic import write_text
from cvspec.errors import CvspecError

CURRENT = "current.json"


class RunDir(NamedTuple):
    """Where one training run keeps its files."""

    path: Path

    @property
    def run_id(self) -> str:
        """The folder name."""
        return self.path.name

    @property
    def config(self) -> Path:
        """The resolved training config, as trained."""
        return self.path / "config.yaml"

    @property
    def last(self) -> Path:
        """Checkpoint after the latest finished epoch (resume point)."""
        return self.path / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        """Weights of the epoch with the best validation metric."""
        return self.path / "checkpoints" / "best.pt"

    @property
    def status(self) -> Path:
        """run.json: task, state (running/done), final metrics, where the weights are."""
        return self.path / "run.json"


def run_id(parts: dict[str, Any]) -> str:
    """A run id from what decides the result (config and data), so a rerun finds its run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file cvspec wrote; a missing or broken one is a clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CvspecError(f"{path} not found") from None
    except ValueError as exc:
        raise CvspecError(f"{path} is not valid JSON: {exc}") from None


def write_metrics(run: RunDir, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl and metrics.csv: one row per finished epoch (rewritten, never appended)."""
    lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    write_text(run.path / "metrics.jsonl", lines)
    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(run.path / "metrics.csv", buf.getvalue())


def set_current(train_dir: Path, run: RunDir, task: str, note: str | None = None) -> None:
    """Point runs/<project>/train/current.json at a run: the one later stages use; `note` says
    what the training that ended with it did (trained, resumed at epoch N, reused)."""
    pointer: dict[str, str] = {"run_id": run.run_id, "path": run.run_id, "task": task}
    if note is not None:
        pointer["note"] = note
    write_json(train_dir / CURRENT, pointer)


def finished(train_dir: Path) -> RunDir:
    """The current run, when its training finished: what export and evaluate read. An
    interrupted run (or one still training) is a clear error that says how to go on."""
    run = current(train_dir)
    status = read_json(run.status)
    if status.get("state") != "done":
        done = _epochs_done(run)
        count = "" if done is None else f"{done} epoch(s) done; "
        raise CvspecError(
            f"run {run.run_id} has not finished training ({count}it was stopped, or is still "
            "running): rerun the train stage, which resumes it"
        )
    return run


def _epochs_done(run: RunDir) -> int | None:
    """Epochs an unfinished run completed: its metrics.jsonl rows (timm), or ultralytics'
    results.csv rows less the header; None when neither is there yet."""
    for name, header in (("metrics.jsonl", 0), ("results.csv", 1)):
        log = run.path / name
        if log.is_file():
            rows = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
            return max(len(rows) - header, 0)
    return None


def current(train_dir: Path) -> RunDir:
    """The run later stages use; a clear error when there is none yet."""
    pointer = train_dir / CURRENT
    if not pointer.is_file():
        raise CvspecError(f"no trained model: {pointer} is missing; run the train stage first")
    data = read_json(pointer)
    run = RunDir(train_dir / str(data["path"]))
    if not run.status.is_file():
        raise CvspecError(f"{pointer} names run {data['path']}, which has no run.json")
    return run


def current_note(train_dir: Path) -> str | None:
    """What the training that last set current.json did with its run, where it said."""
    note = read_json(train_dir / CURRENT).get("note")
    return None if note is None else str(note)
