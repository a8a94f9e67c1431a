"""Train a classifier from a checked config: run folder, resume, epochs, checkpoints, status."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cvspec.atomic import write_text
from cvspec.data.version import images_digest
from cvspec.preprocess import Preprocess
from cvspec.train import checkpoint, data, loop, optim
from cvspec.train.config import Settings
from cvspec.train.distributed import (
    World,
    start,
    stop,
    unwrap,
    world,
    wrap,
)
from cvspec.train.environment import drift, environment
from cvspec.train.identity import CONFIG_NOT_IN_ID as _NOT_IN_ID
from cvspec.train.identity import DATA_BY_RECORDS as _DATA_BY_RECORDS
from cvspec.train.progress import say
from cvspec.train.runs import RunDir, read_json, run_id, set_current, write_json, write_metrics

if TYPE_CHECKING:
    from cvspec.data.index import DataIndex


class Outcome(NamedTuple):
    """A finished (or reused) run and its final metrics."""

    run: RunDir
    metrics: dict[str, Any]
    note: str  # "trained", "resumed at epoch N", "reused"


def fit(s: Settings, root: Path, train_dir: Path, console: Any, name: str | None = None) -> Outcome:
    """Train (or resume, or reuse) the run the config and data decide; return its metrics."""
    if s.model.pretrained and not s.model.weights:
        from cvspec.errors import UsageError
        from cvspec.train.model import PRETRAINED_HELP

        raise UsageError(PRETRAINED_HELP)
    w = world()
    if not w.main:  # one progress report and one set of files: rank 0's
        from rich.console import Console

        console = Console(quiet=True)
    setup_torch(s.threads, w.local_size)
    index = data.load_index(s.data, root)
    records = {split: data.usable(index.split(split)) for split in ("train", "val")}
    run = RunDir(train_dir / (name or run_id(_identity(s, index, records, w.size, root))))
    if run.status.is_file() and read_json(run.status).get("state") == "done":
        status = read_json(run.status)
        _say_drift(console, run, status.get("environment"))
        return Outcome(run, status["metrics"], "reused")
    if w.main:
        checkpoint.clean_temporaries(run.last.parent)
    state = checkpoint.load(run.last) if run.last.is_file() else None
    if state and run.status.is_file():  # resumed under other packages than it started with
        _say_drift(console, run, read_json(run.status).get("environment"), "started")
    if w.main:
        run.path.mkdir(parents=True, exist_ok=True)
        write_text(run.config, _yaml(s.raw))
        write_json(
            run.status, {"task": "classification", "state": "running", "environment": environment()}
        )
        set_current(train_dir, run, "classification")

    classes = list(index.classes)
    pre = preprocess(s)
    loaders = _loaders(s, root, pre, records, w)
    engine = _engine(s, root, len(classes), len(loaders["train"]), state is None, console, w)
    meta = {
        "task": "classification",
        "arch": s.model.arch.split("/", 1)[1],
        "classes": classes,
        "image_size": s.model.image_size,
        "preprocess": pre.to_json(),
        "run_id": run.run_id,
    }
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": 0, "score": None}
    if state:
        _restore(engine, state, run)
        history, best = list(state["history"]), dict(state["best"])
        say(console, f"resuming run {run.run_id} after epoch {len(history)}")
    note = f"resumed at epoch {len(history) + 1}" if state else "trained"
    for epoch in range(len(history), s.train.epochs):
        row = _epoch(s, engine, loaders, epoch, console, w)
        history.append(row)
        score = epoch_score(row)
        improved = best["score"] is None or score > _as_score(best["score"])
        if improved:
            best = {"epoch": epoch + 1, "score": score}
        if w.main:
            _save(run, meta, engine, history, best, improved)
            write_metrics(run, history)
        say(console, _epoch_line(row, s.train.epochs))
    metrics = {**history[best["epoch"] - 1], "best_epoch": best["epoch"], "epochs": len(history)}
    if w.main:
        write_json(
            run.status,
            {
                "task": "classification",
                "state": "done",
                "metrics": metrics,
                "classes": classes,
                "train_images": images_digest(records["train"]),  # whose drift baseline fits
                "checkpoint": "checkpoints/best.pt",
                "processes": w.size,
                "environment": environment(),
            },
        )
    stop(w)  # every process waits here for rank 0's files
    return Outcome(run, metrics, note)


def preprocess(s: Settings) -> Preprocess:
    """The model input of training, evaluation and serving alike: model.image_size, normalised
    as the weights it starts from expect (timm's pretrained_cfg mean and std: 0.5 for a ViT),
    or with ImageNet's mean and std when it trains from scratch."""
    from cvspec.train.model import normalisation

    arch = s.model.arch.split("/", 1)[1]
    return Preprocess(s.model.image_size, *normalisation(arch, bool(s.model.weights)))


def _say_drift(console: Any, run: RunDir, recorded: Any, what: str = "trained") -> None:
    """A run reused (or resumed) under other package versions than it was trained (started)
    with: its id leaves them out (a new torch does not retrain), so say which differ and how to
    train it again."""
    changed = drift(recorded, environment())
    if changed:
        say(
            console,
            f"run {run.run_id} was {what} with other packages than this environment has "
            f"({', '.join(changed)}); delete {run.path} to train it again here",
        )


def epoch_score(row: dict[str, Any]) -> list[float]:
    """How epochs rank for best.pt, higher is better: validation accuracy, ties (common on a
    small validation split, where accuracy saturates) broken by the lower validation loss;
    without a validation split, the lower training loss."""
    if "val_accuracy" in row:
        return [float(row["val_accuracy"]), -float(row["val_loss"])]
    return [-float(row["train_loss"])]


def _as_score(stored: Any) -> list[float]:
    # a checkpoint written before ties were broken kept the accuracy alone: as before, only a
    # higher accuracy beats it
    return [float(stored), float("inf")] if isinstance(stored, int | float) else list(stored)


def _save(
    run: RunDir,
    meta: dict[str, Any],
    engine: loop.Engine,
    history: list[dict[str, Any]],
    best: dict[str, Any],
    improved: bool,
) -> None:
    """best.pt when the epoch improved; last.pt (everything a resume needs) always."""
    weights = unwrap(engine.model).state_dict()
    if improved:
        checkpoint.save({"meta": meta, "model": weights, "metrics": history[-1]}, run.best)
    state = {"meta": meta, "model": weights, "history": history, "best": best, **_states(engine)}
    checkpoint.save(state, run.last)


def _epoch(
    s: Settings,
    engine: loop.Engine,
    loaders: dict[str, Any],
    epoch: int,
    console: Any,
    w: World,
) -> dict[str, Any]:
    """Train one epoch under a progress bar, then validate; the epoch's metrics row."""
    import torch

    from cvspec.train.progress import make as make_progress

    started = time.perf_counter()
    seed = data.mix_seed(s.train.seed, epoch)
    torch.manual_seed(seed)
    loaders["train"].sampler.set_epoch(epoch)
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": engine.scheduler.get_last_lr()[0]}
    with make_progress(console) as bar:
        task = bar.add_task(
            f"epoch {epoch + 1}/{s.train.epochs}",
            total=len(loaders["train"]),
            loss=0.0,
            lr=0.0,
            ips=0.0,
        )

        def on_batch(loss: float, lr: float, ips: float) -> None:
            bar.update(task, advance=1, loss=loss, lr=lr, ips=ips)

        row |= loop.train_epoch(engine, loaders["train"], seed, on_batch, w)
    if "val" in loaders:
        row |= loop.validate(engine, loaders["val"], w)
    row["epoch_seconds"] = time.perf_counter() - started
    return row


def setup_torch(threads: int | None, processes: int = 1) -> None:
    """Threads (default: this process's share of the CPUs it may use among the `processes`
    training on this machine; see cvspec.cpus.threads) and deterministic kernels where torch
    has them."""
    import torch

    from cvspec import cpus

    torch.set_num_threads(threads or cpus.threads(processes))
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False


def _identity(
    s: Settings, index: DataIndex, records: dict[str, list[Any]], processes: int, root: Path
) -> dict[str, Any]:
    """What decides a run's result: the config (less _NOT_IN_ID, and the data keys training
    reads through its records), the train and val records, the bytes of the weights it starts
    from, and how many processes share each step. One process, no weights file, and no class
    that data.exclude took away, add no key: such a run keeps the id it had before those keys
    existed."""
    train = {k: v for k, v in s.raw["train"].items() if k not in _NOT_IN_ID}
    out = {
        "data": {k: v for k, v in s.raw["data"].items() if k not in _DATA_BY_RECORDS},
        "model": s.raw["model"],
        "train": train,
        "files": _records_digest(records),
    }
    if s.model.weights:  # the config names the file: new weights at the same path are
        from cvspec.train.model import weights_path  # another start, not the finished run

        weights = weights_path(s.model.weights, s.spec_file, root)
        out["weights_sha256"] = hashlib.sha256(weights.read_bytes() if weights else b"").hexdigest()
    if processes > 1:  # per-process batches, batch-norm statistics and shard padding differ
        out["processes"] = processes
    # The class list decides the head; the records' labels imply it, except where data.exclude
    # took a class away (another head, another label order) or where a class has no training
    # or validation image (an empty class folder: one more output the labels do not show)
    labelled = {r.label for recs in records.values() for r in recs}
    if index.emptied or len(labelled) < len(index.classes):
        out["classes"] = list(index.classes)
    return out


def _records_digest(records: dict[str, list[Any]]) -> str:
    """A hash of the records training reads: each one's split, path, label and file bytes."""
    digest = hashlib.sha256()
    for split, recs in sorted(records.items()):
        for r in recs:
            digest.update(f"{split}\0{r.path}\0{r.label}\0{r.sha256}\n".encode())
    return digest.hexdigest()


def _engine(
    s: Settings, root: Path, classes: int, steps: int, fresh: bool, console: Any, w: World
) -> loop.Engine:
    """Model (seeded), optimiser, schedule and precision on the best device here; under
    DistributedDataParallel when several processes train."""
    import torch

    from cvspec.train.augment import mixup_alpha
    from cvspec.train.model import create, weights_path

    cuda = torch.cuda.is_available()
    device = torch.device(
        f"cuda:{w.local_rank}" if cuda and w.distributed else "cuda" if cuda else "cpu"
    )
    start(w, cuda)
    torch.manual_seed(s.train.seed)
    weights = weights_path(s.model.weights, s.spec_file, root) if fresh else None
    arch, pretrained = s.model.arch.split("/", 1)[1], s.model.pretrained and fresh
    model = create(arch, classes, pretrained, weights, s.model.image_size)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    opt = optim.optimizer(model, s.train.optimizer)
    sched = optim.scheduler(opt, s.train, steps)
    model = wrap(model, w, cuda)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s.train.precision) if cuda else None
    if s.train.precision != "fp32" and not cuda and fresh:
        say(console, f"train.precision {s.train.precision} needs a GPU; training in fp32 here")
    scaler = torch.amp.GradScaler("cuda") if amp is torch.float16 else None
    return loop.Engine(model, opt, sched, scaler, device, amp, cuda, mixup_alpha(s.data.augment))


def _loaders(
    s: Settings, root: Path, pre: Preprocess, records: dict[str, list[Any]], w: World
) -> dict[str, Any]:
    """This process's loaders: its shard of each split, its share of the global batch."""
    from cvspec.train.augment import image_transform, tensor_transform

    data_root = Path(s.data.path) if Path(s.data.path).is_absolute() else root / s.data.path
    steps = s.data.augment
    train = data.ImageDataset(
        data_root,
        records["train"],
        pre,
        s.train.seed,
        image_transform(steps, pre.image_size),
        tensor_transform(steps),
    )
    batch = max(1, s.train.batch_size // w.size)  # the spec's batch size is the global one
    out = {
        "train": data.loader(train, batch, s.train.workers, True, w.rank, w.size),
    }
    if records["val"]:
        val = data.ImageDataset(data_root, records["val"], pre, s.train.seed)
        out["val"] = data.loader(val, batch * 2, s.train.workers, False, w.rank, w.size)
    return out


def _states(engine: loop.Engine) -> dict[str, Any]:
    return {
        "optimizer": engine.optimizer.state_dict(),
        "scheduler": engine.scheduler.state_dict(),
        "scaler": engine.scaler.state_dict() if engine.scaler is not None else None,
    }


def _restore(engine: loop.Engine, state: dict[str, Any], run: RunDir) -> None:
    unwrap(engine.model).load_state_dict(state["model"])
    try:
        engine.optimizer.load_state_dict(state["optimizer"])
    except ValueError:  # another grouping of the parameters (an older cvspec started it)
        from cvspec.errors import CvspecError

        raise CvspecError(
            f"run {run.run_id} was started by another cvspec version, whose optimiser state "
            f"does not resume here; delete {run.path} to train it again"
        ) from None
    engine.scheduler.load_state_dict(state["scheduler"])
    if engine.scaler is not None and state.get("scaler"):
        engine.scaler.load_state_dict(state["scaler"])


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    val = (
        f"  val loss {row['val_loss']:.4f}  val acc {row['val_accuracy']:.4f}"
        if "val_loss" in row
        else ""
    )
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}{val}  "
        f"{row['images_per_s']:.0f} img/s  {row['train_seconds']:.1f} s"
    )


def _yaml(data: dict[str, Any]) -> str:
    from cvspec.generate.render import dump_yaml

    return dump_yaml(data)
