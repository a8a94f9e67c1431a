"""Training throughput of cvspec's trainer beside a minimal hand-written timm + torch loop.

Both train the same model (the digits example's timm/resnet10t, 10 classes, 32 px) on the same
training images (the digits example's train split) with the same batch size, optimiser, data
loader workers and torch threads, in one process, alternating round by round (each round: one
fresh run of each) so that the noise of a shared machine hits both alike. The figure is the
median over rounds of the paired ratio of training images/s (the training pass only: cvspec
also validates and checkpoints after each epoch, reported apart as the per-epoch wall time).
Target: ratio >= 0.95. On a GPU (`--device cuda`, the default where one is) both loops train
in bf16 autocast with channels_last tensors and pinned host memory, as cvspec's trainer does
there (`train.precision: bf16`).
Usage: python benchmarks/bench_train.py [--rounds 8] [--epochs 1] [--threads N] [--workers N]
       [--batch N] [--device auto|cpu|cuda] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET = 0.95


def build_project(folder: Path) -> Path:
    """The digits example (spec + data) built into folder; returns its train config dir."""
    import subprocess

    (folder / ".git").mkdir(parents=True, exist_ok=True)
    for args in (["init", "--example", "digits", "."], ["build"]):
        subprocess.run([sys.executable, "-m", "cvspec", *args], cwd=folder, check=True,
                       capture_output=True)  # fmt: skip
    return folder / "generated" / "digits" / "train"


def hand_loop(s: Any, records: list[Any], data_root: Path, epochs: int, device: str) -> list[float]:
    """The baseline: PIL + torchvision transforms, a DataLoader, timm, AdamW; images/s. On
    cuda: bf16 autocast, channels_last, pinned memory."""
    import timm
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    size = s.model.image_size
    tf = v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.8, 1.0)), v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])  # fmt: skip

    class Folder(torch.utils.data.Dataset[Any]):
        def __len__(self) -> int:
            return len(records)

        def __getitem__(self, i: int) -> Any:
            with Image.open(data_root / records[i].path) as img:
                return tf(img.convert("RGB")), records[i].label

    workers = s.train.workers
    cuda = device == "cuda"
    loader = torch.utils.data.DataLoader(
        Folder(), batch_size=s.train.batch_size, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0, drop_last=True, pin_memory=cuda,
    )  # fmt: skip
    torch.manual_seed(0)
    fmt = torch.channels_last if cuda else torch.contiguous_format
    model = timm.create_model(s.model.arch.split("/", 1)[1], num_classes=10)
    model = model.to(device).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=s.train.optimizer.lr,
                            weight_decay=s.train.optimizer.weight_decay)  # fmt: skip
    rates = []
    for _ in range(epochs):
        model.train()
        seen, started = 0, time.perf_counter()
        for x_cpu, y_cpu in loader:
            x = x_cpu.to(device, memory_format=fmt, non_blocking=True)
            y = y_cpu.to(device, non_blocking=True)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=cuda):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        if cuda:
            torch.cuda.synchronize()
        rates.append(seen / (time.perf_counter() - started))
    return rates


def cvspec_loop(s: Any, root: Path, epochs: int, name: str) -> tuple[list[float], float]:
    """cvspec's trainer on the same config: train images/s per epoch and wall s per epoch."""
    from rich.console import Console

    from cvspec.train.trainer import fit

    settings = s._replace(train=s.train.model_copy(update={"epochs": epochs}))
    started = time.perf_counter()
    out = fit(settings, root, root / "runs" / "bench", Console(stderr=True, quiet=True), name)
    wall = time.perf_counter() - started
    rows = [json.loads(x) for x in (out.run.path / "metrics.jsonl").read_text().splitlines()]
    return [r["images_per_s"] for r in rows], wall / epochs


def gpu_name(device: str) -> str:
    """'cpu', or the GPU's name and what the loops run on it."""
    import torch

    if device == "cpu":
        return "cpu"
    return f"cuda ({torch.cuda.get_device_name(0)}, bf16 autocast, channels_last)"


def main() -> int:
    """Run the rounds and print the table; exit 0 (the figures are the output)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--epochs", type=int, default=1, help="epochs per round and loop")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--workers", type=int, help="data loader workers (default: the spec's, 2)")
    p.add_argument("--batch", type=int, help="batch size (default: the spec's, 64)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.device == "cpu":  # before torch loads: cvspec's trainer takes any GPU it sees
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda and args.device != "cpu" else "cpu"
    if args.device == "cuda" and not cuda:
        p.error("--device cuda: torch sees no GPU here")
    overrides = [f"+train.threads={args.threads}"]
    overrides += [f"train.workers={args.workers}"] if args.workers is not None else []
    overrides += [f"train.batch_size={args.batch}"] if args.batch is not None else []
    overrides += ["train.precision=bf16"] if device == "cuda" else []

    from cvspec.train.config import compose, settings
    from cvspec.train.data import load_index, usable
    from cvspec.train.trainer import setup_torch

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        s = settings(compose(build_project(root), overrides))
        setup_torch(args.threads)
        records = usable(load_index(s.data, root).split("train"))
        data_root = root / s.data.path
        hand: list[float] = []
        ours: list[float] = []
        ratios: list[float] = []
        epoch_wall: list[float] = []
        for i in range(args.rounds):
            rate_hand = statistics.median(hand_loop(s, records, data_root, args.epochs, device))
            rates, wall = cvspec_loop(s, root, args.epochs, f"round-{i}")
            hand.append(rate_hand)
            ours.append(statistics.median(rates))
            ratios.append(ours[-1] / rate_hand)
            epoch_wall.append(wall)
            print(f"round {i + 1}: hand {rate_hand:.0f} img/s, cvspec {ours[-1]:.0f} img/s, "
                  f"ratio {ratios[-1]:.3f}", flush=True)  # fmt: skip
    ratio = statistics.median(ratios)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, threads {args.threads}, device {gpu_name(device)}",
        "images": len(records), "batch": s.train.batch_size, "workers": s.train.workers,
        "hand_images_per_s": statistics.median(hand),
        "cvspec_images_per_s": statistics.median(ours),
        "ratio": ratio, "round_ratios": ratios, "target": TARGET,
        "cvspec_epoch_wall_s": statistics.median(epoch_wall),
    }  # fmt: skip
    print(f"\n{result['machine']}; {len(records)} training images, batch {s.train.batch_size}, "
          f"{s.train.workers} workers, {args.rounds} rounds x {args.epochs} epochs")  # fmt: skip
    print(f"hand loop    {result['hand_images_per_s']:8.0f} img/s (median epoch)")
    print(f"cvspec       {result['cvspec_images_per_s']:8.0f} img/s (median epoch)")
    verdict = "met" if ratio >= TARGET else "MISSED"
    print(f"ratio        {ratio:8.3f}  median of the paired rounds (target >= {TARGET}: {verdict})")
    print(
        f"cvspec epoch {result['cvspec_epoch_wall_s']:8.2f} s wall (train + validate + checkpoint)"
    )
    if device == "cpu":
        print("GPU: not used; the GPU comparison (bf16, channels_last) runs with --device cuda.")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
