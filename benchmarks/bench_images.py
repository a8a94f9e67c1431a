"""Installed size of the serve image's Python dependencies against the train image's (torch).

Each image's dependencies go into their own venv (cached under /tmp, rebuilt when the
requirements change), measured with `du`, beside a bare venv as the baseline.
Usage: python benchmarks/bench_images.py [--cache DIR] [--fresh] [--json PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SERVE_TARGET_MB = 400.0


def requirements(extra: str) -> list[str]:
    """cvspec's core dependencies plus one extra's, as pyproject.toml declares them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    found = list(project["dependencies"])
    for item in extras.get(extra, []):
        if item.startswith("cvspec["):  # an extra that pulls other extras
            for inner in item[len("cvspec[") : -1].split(","):
                found.extend(extras[inner])
        else:
            found.append(item)
    return sorted(set(found))


def venv(cache: Path, name: str, reqs: list[str], fresh: bool) -> tuple[Path, float | None]:
    """A venv holding exactly `reqs`; reused while they are unchanged. Returns (path, install s)."""
    path = cache / name
    stamp = path / ".requirements"
    want = "\n".join(reqs)
    if not fresh and stamp.is_file() and stamp.read_text() == want:
        return path, None
    shutil.rmtree(path, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if reqs:
        subprocess.run([str(path / "bin/python"), "-m", "pip", "install", "-q", *reqs], check=True)
    stamp.write_text(want)
    return path, time.perf_counter() - started


def du_mb(path: Path) -> tuple[float, str]:
    """Size in MB (10^6 bytes, `du -sb`) and `du -sh`'s own figure."""
    exact = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    human = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, check=True)
    return int(exact.stdout.split()[0]) / 1e6, human.stdout.split()[0]


def has_module(path: Path, module: str) -> bool:
    """True when the venv can import `module` (checked without importing it)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([str(path / "bin/python"), "-c", code], check=False).returncode == 0


def yes(flag: object) -> str:
    """'yes' or 'no'."""
    return "yes" if flag else "no"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cvspec-bench-images"))
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached venvs")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, reqs in (
        ("bare", []),
        ("serve", requirements("serve")),
        ("train", requirements("train")),
    ):
        key = hashlib.sha256("\n".join(reqs).encode()).hexdigest()[:8]
        path, seconds = venv(args.cache, f"{name}-{key}", reqs, args.fresh)
        mb, human = du_mb(path)
        rows.append(
            {
                "venv": name,
                "mb": round(mb, 1),
                "du_sh": human,
                "install_s": seconds,
                "torch": has_module(path, "torch"),
                "onnxruntime": has_module(path, "onnxruntime"),
            }
        )
    bare, serve, train = rows
    serve_deps, train_deps = serve["mb"] - bare["mb"], train["mb"] - bare["mb"]
    print(
        f"machine: Python {platform.python_version()}, {platform.platform()}; venvs in {args.cache}"
    )
    print("\n| venv  | du -sh | MB     | deps MB (minus bare venv) | torch | onnxruntime |")
    print("|-------|-------:|-------:|--------------------------:|-------|-------------|")
    for row in rows:
        deps = row["mb"] - bare["mb"]
        print(
            f"| {row['venv']:<5} | {row['du_sh']:>6} | {row['mb']:6.0f} | {deps:25.0f} "
            f"| {yes(row['torch']):<5} | {yes(row['onnxruntime']):<11} |"
        )
    ratio = train_deps / serve_deps
    verdict = "PASS" if serve["mb"] <= SERVE_TARGET_MB and not serve["torch"] else "FAIL"
    print(
        f"\nserve venv {serve['mb']:.0f} MB (target <= {SERVE_TARGET_MB:.0f} MB, no torch): "
        f"{verdict}; train deps / serve deps = {ratio:.1f}x"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "ratio": ratio, "verdict": verdict}, indent=2)
        )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
