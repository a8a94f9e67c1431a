"""What the generated data tests call: run one data check against a limit from the spec."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvspec.testing.options import RunOptions, composed, run_options

if TYPE_CHECKING:
    from cvspec.data.checks import CheckResult, Dataset


@cache
def dataset(root: Path, spec_file: str, options: RunOptions | None = None) -> Dataset:
    """The checked dataset of a spec as the run composed it, decoded once per test session."""
    from cvspec.data.stage import load_dataset

    loaded = composed(root, spec_file, options)
    return load_dataset(loaded.spec, (loaded.path.parent / loaded.spec.data.path).resolve())


def check_data(test_file: str, spec_file: str, check: str, limit: float | None) -> None:
    """Fail with the rule and the offending files unless `check` passes against `limit`.

    Under the test stage of a run with --profile or --set, the dataset and the limit are the
    ones that run composed (see cvspec.testing.options); `limit` is the spec's as built.
    """
    __tracebackhide__ = True  # a failure shows its message, not this helper's frames
    from cvspec.data.checks import catalogue, check_sources
    from cvspec.project import find_root

    by_name = {c.name: c for c in catalogue()}
    if check not in by_name:
        raise AssertionError(f"unknown data check {check!r}; known: {', '.join(by_name)}")
    options = run_options()
    root = find_root(Path(test_file).resolve().parent)
    ds = dataset(root, spec_file, options)
    where = ""
    if options is not None:
        limit = by_name[check].limit(ds.spec)
        where = f" [{spec_file} with {options.describe()}]"
    source = check_sources(composed(root, spec_file, options), root).get(check, "")
    result = by_name[check].verdict(ds, limit, source)
    if result.status == "fail":
        import pytest

        pytest.fail(failure(result, where), pytrace=False)


MOST_FINDINGS = 5  # what a CI log shows of a failed check; the data stage's report has them all


def failure(result: CheckResult, run: str = "") -> str:
    """A failed check as a CI log shows it: the rule, measured value and limit's place (then
    `run`, the options of the run), then how many files (or classes) offend and the first few."""
    head, *lines = result.describe(MOST_FINDINGS).splitlines()
    head += run
    count = len(result.findings)
    if not count:
        return head
    lines = [line for line in lines if not line.startswith("  ... and ")]
    first = f", the first {MOST_FINDINGS}" if count > MOST_FINDINGS else ""
    return "\n".join([head, f"  {count} offending{first}:", *lines])


def synthetic_image(seed: int, size: int = 64) -> Any:
    """A seeded RGB scene (gradient, shapes, mild noise) for tests and benchmarks."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    base = rng.uniform(40, 200, 3) + rng.uniform(-60, 60, 3) * ramp[:, None, None]
    noise = rng.normal(0, 4, (size, size, 3))
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        x1, y1 = (
            x0 + int(rng.integers(size // 8, size // 2)),
            y0 + int(rng.integers(size // 8, size // 2)),
        )
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = (draw.ellipse, draw.rectangle)[int(rng.integers(0, 2))]
        shape((x0, y0, x1, y1), fill=colour)
    return img
