"""How many CPUs this process may use, and how many threads its compute should take.

A machine's core count is not the process's share of it: a Slurm allocation, `docker
--cpuset-cpus` or `taskset` gives it a set of CPUs (its affinity), and OMP_NUM_THREADS is the
usual way to tell a numeric library how many threads to run. Taking every core of a 64-core node
for a 4-CPU job runs 16 threads per CPU, and oversubscribed OpenMP threads wait on each other
(even two trainings of 2 threads each on 2 cores ran 8 % slower than with 1 thread each).
"""

from __future__ import annotations

import os


def usable() -> int:
    """The CPUs this process may run on (its affinity), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def omp_threads() -> int | None:
    """OMP_NUM_THREADS when it is set to a positive whole number, else None."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def threads(processes: int = 1) -> int:
    """Threads for each of `processes` compute processes sharing this process's CPUs.

    One process takes OMP_NUM_THREADS where it is set, else every CPU it may use. Several
    share the CPUs evenly and ignore OMP_NUM_THREADS: torchrun sets it to 1 for each of
    several processes when the user did not, so it cannot say what the user wants (the
    `+train.threads=N` override can).
    """
    if processes <= 1:
        return omp_threads() or usable()
    return max(1, usable() // processes)
