"""Wall-time benchmark of `cvspec validate|build|check`, beside an import-only baseline.

Every figure is the median of fresh processes, run round-robin with the baseline so that the
drift of a noisy machine hits all of them alike; ratios to the baseline are the portable figures.
Commands run twice where it matters: "cold" with the render cache off (CVSPEC_NO_CACHE=1: load,
validate and render everything, as after an edit to the spec) and "cached" with it on (the
render replayed because nothing it was made from changed; see cvspec/generate/cache.py).
Usage: python benchmarks/bench_build.py [--runs 15] [--specs 200] [--big-runs 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
SPECS, PACKAGE = ROOT / "specs", ROOT / "cvspec"
BASELINE = [sys.executable, "-c", "import pydantic, jinja2, ruamel.yaml"]
CVSPEC = [sys.executable, "-m", "cvspec"]
ONE_SPEC, MANY_SPECS, NOOP_CHECK = 0.3, 10.0, 0.3  # targets, seconds
Job = tuple[list[str], Path, bool, bool]  # command, cwd, empty generated/ first, cache on
COLD = {"CVSPEC_NO_CACHE": "1"}
WORDS = ["cat", "dog", "car", "bus", "bike", "person", "tree", "sign", "cone", "box", "cup", "bag"]


class Result(NamedTuple):
    """One row of the table."""

    measurement: str
    median_s: float
    ratio: float  # to the import baseline timed in the same round-robin
    target_s: float | None
    passed: bool | None


def timed(cmd: list[str], cwd: Path, env: dict[str, str], cache: bool = True) -> float:
    """Seconds one fresh process takes; a failing command aborts the benchmark."""
    start = time.perf_counter()
    env = env if cache else {**env, **COLD}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(
            f"failed (exit {proc.returncode}): {' '.join(cmd)} in {cwd}\n"
            f"{proc.stdout[-3000:]}{proc.stderr}(did cvspec's code change during the run?)"
        )
    return elapsed


def make_repo(parent: Path, name: str) -> Path:
    """A throwaway repository: a `.git` marker and a copy of specs/."""
    repo = parent / name
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(SPECS, repo / "specs")
    return repo


def fresh(repo: Path) -> Path:
    """Remove generated/ (untimed) so the next build writes everything."""
    shutil.rmtree(repo / "generated", ignore_errors=True)
    return repo


def synthetic_spec(i: int, base: str, task: str) -> str:
    """Spec number i: extends an example spec, varying name, classes, sizes, sweep and gates."""
    name = f"{Path(base).stem.lstrip('_')}-{i:03d}"
    k = 2 + i % 10 if task == "classification" else 1 + i % 8
    classes = "auto" if task == "classification" and i % 4 == 0 else f"[{', '.join(WORDS[:k])}]"
    if task == "classification":
        size, batch = 32 + 8 * (i % 5), (16, 32, 64)[i % 3]
        gates = f"accuracy: {{min: {0.8 + i % 15 / 100:.2f}}}, macro_f1: {{min: 0.7}}"
        gates += ", top5_accuracy: {min: 0.99}" if classes != "auto" and k > 5 else ""
        sweep = (
            "{}",
            "{train.batch_size: [32, 64]}",
            "{train.optimizer.weight_decay: [0.01, 0.05], train.epochs: [5, 10]}",
        )[i % 3]
    else:
        size, batch = 128 + 32 * (i % 4), (8, 16, 32)[i % 3]
        gates = f"map50: {{min: {0.4 + i % 20 / 100:.2f}}}"
        gates += ", map50_95: {min: 0.3}, recall: {min: 0.5}" if i % 2 else ""
        sweep = "{}"  # a detector trains one config: train.sweep is for classification
    return (
        f"cvspec: 1\nextends: {base}\ntask: {task}\n"
        f"project: {{name: {name}, description: Synthetic project {i} from {base}}}\n"
        f"data: {{classes: {classes}}}\nmodel: {{image_size: {size}}}\n"
        f"train: {{epochs: {5 + i % 20}, batch_size: {batch}, sweep: {sweep}}}\n"
        f"evaluate: {{gates: {{{gates}}}}}\ndeploy: {{image: {name}}}\n"
    )


def make_monorepo(parent: Path, count: int, examples: list[Path]) -> Path:
    """A repository of `count` specs; the examples become `_name.yaml` partials they extend."""
    repo = make_repo(parent, "monorepo")
    bases: list[tuple[str, str]] = []
    for example in examples:
        partial = repo / "specs" / f"_{example.name}"
        (repo / "specs" / example.name).rename(partial)
        found = re.search(r"^task:\s*(\w+)", partial.read_text(encoding="utf-8"), re.MULTILINE)
        bases.append((partial.name, found.group(1) if found else "classification"))
    for i in range(count):
        base, task = bases[i % len(bases)]
        (repo / "specs" / f"p{i:03d}.yaml").write_text(synthetic_spec(i, base, task), "utf-8")
    return repo


def child_env(tmp: Path) -> dict[str, str]:
    """Run a snapshot of cvspec/ (edits during the run do not leak in) with bytecode cached in
    tmp, so timings are steady-state even where the checkout's .pyc files are stale."""
    shutil.copytree(PACKAGE, tmp / "src" / "cvspec", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    path = os.pathsep.join(p for p in (str(tmp / "src"), env.get("PYTHONPATH")) if p)
    return {
        **env,
        "PYTHONPATH": path,
        "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
        "CVSPEC_CACHE_DIR": str(tmp / "render-cache"),  # never the user's
    }


def round_robin(jobs: dict[str, Job], runs: int, env: dict[str, str]) -> dict[str, float]:
    """Median seconds of each job, run in turn `runs` times after one untimed warm-up each."""
    times: dict[str, list[float]] = {label: [] for label in jobs}
    for round_ in range(runs + 1):
        for label, (cmd, cwd, clean, cache) in jobs.items():
            elapsed = timed(cmd, fresh(cwd) if clean else cwd, env, cache)
            if round_:
                times[label].append(elapsed)
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per single-spec command")
    parser.add_argument("--specs", type=int, default=200, help="specs in the synthetic monorepo")
    parser.add_argument("--big-runs", type=int, default=3, help="runs per monorepo command")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    if min(args.runs, args.specs, args.big_runs) < 1:
        parser.error("--runs, --specs and --big-runs must be at least 1")
    examples = sorted(p for p in SPECS.glob("*.yaml") if not p.name.startswith("_"))
    rows: list[tuple[str, float, float | None, float]] = []  # (label, median, target, baseline)
    with tempfile.TemporaryDirectory(prefix="cvspec-bench-") as tmp:
        builds, checks = make_repo(Path(tmp), "builds"), make_repo(Path(tmp), "checks")
        env = child_env(Path(tmp))
        jobs: dict[str, Job] = {"baseline: import": (BASELINE, builds, False, False)}
        for spec in examples:
            rel = f"specs/{spec.name}"
            jobs[f"validate {spec.stem}"] = ([*CVSPEC, "validate", rel], builds, False, False)
            jobs[f"build {spec.stem} (fresh, cold)"] = (
                [*CVSPEC, "build", rel],
                builds,
                True,
                False,
            )
            jobs[f"build {spec.stem} (fresh, cached)"] = (
                [*CVSPEC, "build", rel],
                builds,
                True,
                True,
            )
        timed([*CVSPEC, "build"], checks, env)
        n_ex = len(examples)
        jobs[f"check, no-op ({n_ex} specs, cold)"] = ([*CVSPEC, "check"], checks, False, False)
        jobs[f"check, no-op ({n_ex} specs, cached)"] = ([*CVSPEC, "check"], checks, False, True)
        print(f"timing {len(jobs)} commands x {args.runs} runs ...", file=sys.stderr)
        medians = round_robin(jobs, args.runs, env)
        for label, median in medians.items():
            target = ONE_SPEC if label.startswith("build") else None
            target = NOOP_CHECK if label.startswith("check") else target
            rows.append((label, median, target, medians["baseline: import"]))
        mono = make_monorepo(Path(tmp), args.specs, examples)
        n = args.specs
        big: dict[str, Job] = {
            "baseline: import (again)": (BASELINE, mono, False, False),
            f"build {n} specs (fresh, cold)": ([*CVSPEC, "build"], mono, True, False),
            f"build {n} specs (no-op, cold)": ([*CVSPEC, "build"], mono, False, False),
            f"check {n} specs (no-op, cold)": ([*CVSPEC, "check"], mono, False, False),
            f"check {n} specs (no-op, cached)": ([*CVSPEC, "check"], mono, False, True),
        }
        print(f"timing {n} specs x {args.big_runs} runs ...", file=sys.stderr)
        medians = round_robin(big, args.big_runs, env)
        for label, median in medians.items():
            target = MANY_SPECS if "fresh" in label else None
            rows.append((label, median, target, medians["baseline: import (again)"]))
    results = [
        Result(
            label,
            round(median, 4),
            round(median / base, 2),
            target,
            None if target is None else median <= target,
        )
        for label, median, target, base in rows
    ]
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "runs": args.runs,
        "big_runs": args.big_runs,
        "specs": args.specs,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(
        f"machine: {machine['cpus']} CPUs, Python {machine['python']}, {machine['platform']}; "
        f"N = {args.runs} runs per command ({args.big_runs} for the {n}-spec monorepo)"
    )
    print(f"\n| {'measurement':<32} | median s | x import | target   | result |")
    print(f"|{'-' * 34}|---------:|---------:|----------|--------|")
    for r in results:
        goal = f"<= {r.target_s:g} s" if r.target_s else "-"
        verdict = {True: "PASS", False: "FAIL", None: "-"}[r.passed]
        print(
            f"| {r.measurement:<32} | {r.median_s:8.3f} | {r.ratio:8.2f} "
            f"| {goal:<8} | {verdict:<6} |"
        )
    if args.json:
        body = {"machine": machine, "results": [r._asdict() for r in results]}
        args.json.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    missed = [r.measurement for r in results if r.passed is False]
    print(f"\nmissed targets: {', '.join(missed)}" if missed else "\nall targets met")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
