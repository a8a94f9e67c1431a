"""Load benchmark of `cvspec serve` on 127.0.0.1: batching on and off, 1 and 16 clients.

Measures, in one run: throughput and p50/p95/p99 latency per cell (zero errors required); the
server's p50 overhead over the same work done in-process (decode + preprocess + the same
onnxruntime session); the server's RSS over a longer run (flat = no leak, bounded queue).
Usage: python benchmarks/bench_serve.py [--model-dir runs/digits/export] [--seconds 10]
       [--memory-seconds 60] [--threads 0] [--workers 1] [--json PATH]
With --workers N every server runs N processes (serve.workers), each with its own event loop
and batcher; the in-process baseline stays one process.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cvspec.preprocess import Preprocess, open_image, to_array
from cvspec.serve.demo_model import write_demo_model
from cvspec.serve.launch import ServerProcess

BATCHING = {  # label -> server flags; "on" is the spec default (max_wait_ms 5)
    "off": ["--max-batch", "1"],
    "on": ["--max-batch", "16", "--max-wait-ms", "5"],
    "on/0ms": ["--max-batch", "16", "--max-wait-ms", "0"],
}
CLIENTS = (1, 16)
TARGET_SPEEDUP, TARGET_OVERHEAD_MS = 2.0, 2.0


def sample_image(side: int = 64) -> bytes:
    """A seeded random RGB PNG (what a client would upload)."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


async def client(port: int, body: bytes, until: float, latencies: list[float]) -> int:
    """One keep-alive HTTP/1.1 client posting `body` back to back; returns its error count."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    errors = 0
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(head + body)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        errors += status_line.split()[1] != b"200"
    writer.close()
    return errors


def load(port: int, body: bytes, clients: int, seconds: float) -> tuple[list[float], int, float]:
    """Run `clients` concurrent clients for `seconds`: latencies (s), errors, elapsed (s)."""

    async def run() -> tuple[list[float], int]:
        latencies: list[float] = []
        until = time.perf_counter() + seconds
        errors = await asyncio.gather(
            *(client(port, body, until, latencies) for _ in range(clients))
        )
        return latencies, sum(errors)

    started = time.perf_counter()
    latencies, errors = asyncio.run(run())
    return latencies, errors, time.perf_counter() - started


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 in ms."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000}


def in_process(
    model: Any, pre: Preprocess, body: bytes, seconds: float
) -> tuple[list[float], list[float]]:
    """The same work without a server, batch 1: (decode + preprocess + run, run only) in s."""
    full, bare = [], []
    batch = to_array([open_image(body)], pre)
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        model.run(to_array([open_image(body)], pre))
        t1 = time.perf_counter()
        model.run(batch)
        full.append(t1 - t0)
        bare.append(time.perf_counter() - t1)
    return full, bare


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (worker processes; Linux /proc), MB."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return total + sum(rss_mb(int(child)) for child in children)


def all_ready(server: ServerProcess, workers: int, timeout: float = 120.0) -> None:
    """Wait until every worker answers: /health 200 on many fresh connections in a row."""
    import urllib.error
    import urllib.request

    if workers == 1:
        return  # ServerProcess already saw /health 200
    deadline, streak = time.monotonic() + timeout, 0
    while streak < 20 * workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every one of {workers} workers got ready in {timeout:.0f} s")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:
                streak = streak + 1 if answer.status == 200 else 0
        except urllib.error.HTTPError:
            streak = 0
            time.sleep(0.1)


def memory_run(server: ServerProcess, body: bytes, seconds: float) -> dict[str, Any]:
    """16 clients for `seconds` while sampling the server's RSS once a second."""
    import threading

    assert server.proc is not None
    pid = server.proc.pid
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        start = time.perf_counter()
        while not done.is_set():
            samples.append((time.perf_counter() - start, rss_mb(pid)))
            done.wait(1.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    latencies, errors, _ = load(server.port, body, 16, seconds)
    done.set()
    sampler.join()
    settled = [(t, r) for t, r in samples if t >= 10] or samples
    return {
        "requests": len(latencies),
        "errors": errors,
        "rss_first_mb": samples[0][1],
        "rss_at_10s_mb": settled[0][1],
        "rss_last_mb": samples[-1][1],
        "rss_max_mb": max(r for _, r in samples),
        "rss_slope_mb_per_min": _slope(settled) * 60,
    }


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx, my = sum(t for t, _ in points) / n, sum(r for _, r in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return sum((t - mx) * (r - my) for t, r in points) / var if var else 0.0


def measure(
    model_dir: Path, body: bytes, threads: int, rounds: int, seconds: float, workers: int = 1
) -> dict[str, Any]:
    """Every cell and the in-process baseline, round-robin so a noisy machine hits all alike."""
    from contextlib import ExitStack

    from cvspec.serve.model import Model, read_model_dir

    files = read_model_dir(model_dir)
    model = Model(files, threads)
    args = server_args(model_dir, threads, workers)
    lat: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    direct: tuple[list[float], list[float]] = ([], [])
    with ExitStack() as stack:
        servers = {m: stack.enter_context(ServerProcess([*args, *f])) for m, f in BATCHING.items()}
        for server in servers.values():
            all_ready(server, workers)
            load(server.port, body, 16, 1)  # warm-up, discarded
        in_process(model, files.pre, body, 1)
        for _ in range(rounds):
            for mode, server in servers.items():
                for clients in CLIENTS:
                    got, failed, elapsed = load(server.port, body, clients, seconds)
                    key = f"{mode}/{clients}"
                    lat.setdefault(key, []).extend(got)
                    rps.setdefault(key, []).append(len(got) / elapsed)
                    errors[key] = errors.get(key, 0) + failed
            full, bare = in_process(model, files.pre, body, seconds / 2)
            direct[0].extend(full)
            direct[1].extend(bare)
    cells = {
        k: {
            "rps": statistics.median(rps[k]),
            "rps_rounds": rps[k],
            "requests": len(lat[k]),
            "errors": errors[k],
            **percentiles(lat[k]),
        }
        for k in lat
    }
    return {
        "cells": cells,
        "in_process": {
            "with_preprocess": percentiles(direct[0]),
            "session_only": percentiles(direct[1]),
        },
    }


def paired_ratio(batched: dict[str, Any], unbatched: dict[str, Any]) -> float:
    """Median over rounds of batched / unbatched req/s, each pair measured seconds apart.

    A shared machine's speed drifts between rounds; a ratio within one round cancels most of it.
    """
    pairs = zip(batched["rps_rounds"], unbatched["rps_rounds"], strict=True)
    return float(statistics.median(b / u for b, u in pairs))


def server_args(model_dir: Path, threads: int, workers: int) -> list[str]:
    """The flags every server of a run shares."""
    return ["--model-dir", str(model_dir), "--threads", str(threads), "--workers", str(workers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("runs/digits/export"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_dir, source = args.model_dir, str(args.model_dir)
    if not (model_dir / "model.onnx").is_file():
        labels = [str(i) for i in range(10)]
        model_dir = write_demo_model(Path(tempfile.mkdtemp()) / "export", labels, 32, 32)
        source = "demo model (2 convolutions, 32 channels, 32 px; no trained export found)"
    body = sample_image()
    print(
        f"model: {source}\nmachine: {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start\n"
        f"{args.rounds} rounds x {args.seconds:g} s per cell, round-robin; "
        f"{args.workers} server process(es), ORT threads {args.threads}\n"
    )
    result = measure(model_dir, body, args.threads, args.rounds, args.seconds, args.workers)
    cells, direct = result["cells"], result["in_process"]
    print(
        f"{'batching':<10}{'clients':>8}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}"
    )
    for key, cell in cells.items():
        mode, clients = key.rsplit("/", 1)
        print(
            f"{mode:<10}{clients:>8}{cell['rps']:>10.1f}{cell['p50_ms']:>9.2f}"
            f"{cell['p95_ms']:>9.2f}{cell['p99_ms']:>9.2f}{cell['errors']:>8}"
        )
    with ServerProcess(
        [*server_args(model_dir, args.threads, args.workers), *BATCHING["on"]]
    ) as server:
        all_ready(server, args.workers)
        memory = memory_run(server, body, args.memory_seconds)
    base = direct["with_preprocess"]["p50_ms"]
    summary = {
        "speedup_wait5": paired_ratio(cells["on/16"], cells["off/16"]),
        "speedup_wait0": paired_ratio(cells["on/0ms/16"], cells["off/16"]),
        "speedup_wait5_of_medians": cells["on/16"]["rps"] / cells["off/16"]["rps"],
        "speedup_wait0_of_medians": cells["on/0ms/16"]["rps"] / cells["off/16"]["rps"],
        "overhead_on_ms": cells["on/1"]["p50_ms"] - base,
        "overhead_off_ms": cells["off/1"]["p50_ms"] - base,
    }
    print(
        f"\nin-process p50: decode+preprocess+run {base:.3f} ms, "
        f"session.run only {direct['session_only']['p50_ms']:.3f} ms"
    )
    print(
        f"batching speedup at 16 clients (median of the rounds' ratios): "
        f"{summary['speedup_wait5']:.2f}x with max_wait 5 ms, {summary['speedup_wait0']:.2f}x "
        f"with 0 ms (target >= {TARGET_SPEEDUP}x); ratio of the median req/s: "
        f"{summary['speedup_wait5_of_medians']:.2f}x, {summary['speedup_wait0_of_medians']:.2f}x"
    )
    print(
        f"server p50 overhead at 1 client: {summary['overhead_on_ms']:.3f} ms batching on, "
        f"{summary['overhead_off_ms']:.3f} ms off (target <= {TARGET_OVERHEAD_MS} ms)"
    )
    print(
        f"memory over {args.memory_seconds:.0f} s at 16 clients: RSS {memory['rss_first_mb']:.1f}"
        f" -> {memory['rss_at_10s_mb']:.1f} (10 s) -> {memory['rss_last_mb']:.1f} MB, max "
        f"{memory['rss_max_mb']:.1f}, slope after 10 s {memory['rss_slope_mb_per_min']:+.2f} "
        f"MB/min; {memory['requests']} requests, {memory['errors']} errors"
    )
    errors = sum(c["errors"] for c in cells.values()) + memory["errors"]
    if args.json:
        report = {"model": source, **result, **summary, "memory": memory, "errors": errors}
        args.json.write_text(json.dumps(report, indent=2))
    if errors:
        sys.exit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
