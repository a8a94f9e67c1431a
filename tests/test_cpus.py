"""Threads for training: the CPUs this process may use and OMP_NUM_THREADS, not the machine's
core count (a Slurm allocation or a cpuset on a big node would otherwise run many threads per
CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvspec import cpus

needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2,
    reason="needs CPU affinity (Linux) and at least 2 cores",
)

# What torch trains with after cvspec's setup, in a fresh process (torch reads its settings once).
TORCH_THREADS = (
    "from cvspec.train.trainer import setup_torch; setup_torch(None); "
    "import torch; print(torch.get_num_threads())"
)


def torch_threads(env: dict[str, str], cpu_set: set[int] | None = None) -> int:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-c", TORCH_THREADS],
        env={**clean, **env},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpu_set)) if cpu_set else None,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


@needs_affinity
def test_training_takes_the_cpus_the_process_may_use_not_every_core() -> None:
    assert torch_threads({}, cpu_set={0}) == 1
    assert torch_threads({}) == len(os.sched_getaffinity(0))


@needs_affinity
def test_omp_num_threads_sets_one_training_process_threads() -> None:
    assert torch_threads({"OMP_NUM_THREADS": "1"}) == 1


def test_several_processes_share_the_cpus_and_ignore_torchrun_s_omp_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for several processes
    assert cpus.threads(2) == 4
    assert cpus.threads(16) == 1
    assert cpus.threads(1) == 1  # one process: the user's OMP_NUM_THREADS
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpus.threads(1) == 8


@pytest.mark.parametrize("value", ["", "0", "-2", "four", " 3 "])
def test_omp_num_threads_counts_only_when_it_is_a_positive_number(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert cpus.threads() == 3


def test_ultralytics_trains_on_no_more_threads_than_the_process_may_use() -> None:
    """ultralytics resets torch to min(8, cores - 1) threads of the whole machine when it picks
    the CPU; cvspec's offline setup caps that (here a machine of 9+ cores, OMP_NUM_THREADS=1)."""
    code = (
        "from ultralytics.utils import torch_utils; torch_utils.NUM_THREADS = 8; "
        "from cvspec.train.ultra import offline; offline(); "
        "torch_utils.select_device('cpu', verbose=False); import torch; "
        "print(torch_utils.NUM_THREADS, torch.get_num_threads())"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "YOLO_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["1", "1"]


def test_server_workers_share_the_cpus_unless_threads_are_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cvspec.serve.config import ServeConfig

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert ServeConfig(tmp_path).model_threads == 0  # one worker: onnxruntime's own default
    assert ServeConfig(tmp_path, workers=4).model_threads == 2
    assert ServeConfig(tmp_path, workers=16).model_threads == 1
    assert ServeConfig(tmp_path, workers=4, threads=3).model_threads == 3
