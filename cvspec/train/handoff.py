"""What a CI train job hands on: `python -m cvspec.train.handoff runs/<project>/train`.

Later jobs (export, evaluate, test) read the current run (current.json names it): its run.json,
config and best checkpoint, and the sweep's summary. Every other checkpoint (each run's
last.pt, which is for resuming, and the best weights of the sweep points not chosen) would only
make the uploaded artifact large, so CI removes them after training, a failed training too.
`cvspec run` never does: locally they resume and reuse runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cvspec.errors import CvspecError
from cvspec.train.runs import current, read_json

CHECKPOINTS = ("*.pt", "*.pth", "*.ckpt")


def keep(train_dir: Path) -> Path | None:
    """The checkpoint later stages read: the current run's `checkpoint` (its best weights);
    None when no run is current or it names none (a training that failed: no weights to keep)."""
    try:
        run = current(train_dir)
        named = read_json(run.status).get("checkpoint")
    except (CvspecError, AttributeError):
        return None
    return (run.path / str(named)).resolve() if named else None


def prune(train_dir: Path) -> tuple[list[Path], int]:
    """Remove every checkpoint under train_dir but the one later stages read; the removed
    files and their bytes."""
    kept = keep(train_dir)
    removed: list[Path] = []
    size = 0
    for pattern in CHECKPOINTS:
        for path in sorted(train_dir.rglob(pattern)):
            if path.is_file() and not path.is_symlink() and path.resolve() != kept:
                size += path.stat().st_size
                path.unlink()
                removed.append(path)
    return removed, size


def main(argv: list[str]) -> int:
    """Prune the train folder given; one line saying what was kept and removed."""
    if len(argv) != 1:
        print("usage: python -m cvspec.train.handoff runs/<project>/train", file=sys.stderr)
        return 2
    train_dir = Path(argv[0])
    if not train_dir.is_dir():
        print(f"{train_dir}: no training output to hand on")
        return 0
    kept = keep(train_dir)
    removed, size = prune(train_dir)
    what = f"kept {kept.relative_to(train_dir.resolve())}" if kept else "no current run's weights"
    print(f"{train_dir}: {what}; removed {len(removed)} other checkpoint(s), {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
