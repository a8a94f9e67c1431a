"""The data-quality check set: each check returns structured findings; the spec sets limits."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from cvspec.data.files import SPLITS

if TYPE_CHECKING:  # not at run time: `cvspec build` reads the check list, not the data
    from cvspec.data.analyze import ImageFacts
    from cvspec.data.index import DataIndex, Problem

Status = Literal["pass", "fail", "info"]


class Finding(NamedTuple):
    """One offending file (or class, or label line) and why; `related` names the other files."""

    path: str
    message: str
    related: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """What the checks read: the index, each record's decode facts, and the reader problems."""

    index: DataIndex
    facts: tuple[ImageFacts, ...]  # aligned with index.records
    problems: tuple[Problem, ...]
    spec: Any  # the validated ClassificationSpec or DetectionSpec

    @cached_property
    def decoded(self) -> list[int]:
        """Indices of the records whose image decoded."""
        return [i for i, f in enumerate(self.facts) if not f.error]

    @cached_property
    def split_class_counts(self) -> dict[str, Counter[int]]:
        """Split -> images per class id that split shows (an image counts once per class)."""
        out: dict[str, Counter[int]] = {}
        for record in self.index.records:
            counts = out.setdefault(record.split, Counter())
            if record.label is not None:
                counts[record.label] += 1
            else:
                counts.update({b.cls for b in record.boxes})
        return out

    @cached_property
    def exact_groups(self) -> list[list[int]]:
        """Record indices of byte-identical files, groups of two or more, in path order."""
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(self.facts):
            if f.sha256:
                groups.setdefault(f.sha256, []).append(i)
        return [g for g in groups.values() if len(g) > 1]

    @cached_property
    def near_matches(self) -> dict[int, tuple[int, int]]:
        """Decoded record index -> (the nearest decoded record before it in path order that is
        at most near_hamming bits away, their distance in bits); images without one left out."""
        return self._nearest[0]

    @cached_property
    def near_leaks(self) -> dict[int, tuple[int, int]]:
        """Decoded val/test record index -> (the nearest decoded record of an earlier split at
        most near_hamming bits away, their distance in bits); ties go to the earlier split."""
        return self._nearest[1]

    @cached_property
    def _nearest(self) -> list[dict[int, tuple[int, int]]]:
        """near_matches and near_leaks, from one search of the perceptual hashes."""
        from cvspec.data.phash import nearest_lower

        decoded = self.decoded
        rank = {s: n for n, s in enumerate(SPLITS)}
        rankings = [range(len(decoded)), [rank[self.index.records[i].split] for i in decoded]]
        distance = self.spec.data.quality.duplicates.near_hamming
        hashes = [self.facts[i].phash for i in decoded]
        return [
            {
                decoded[k]: (decoded[int(j)], int(b))
                for k, (j, b) in enumerate(zip(found, bits, strict=True))
                if j >= 0
            }
            for found, bits in nearest_lower(hashes, rankings, distance)
        ]


class Outcome(NamedTuple):
    """What a check measured: its findings and the value compared with the limit."""

    findings: list[Finding]
    value: float


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict, as the report, the summary table and the data tests show it."""

    name: str
    rule: str
    status: Status
    value: float
    limit: float | None
    findings: tuple[Finding, ...]
    source: str = ""  # where the spec sets the limit: 'specs/x.yaml:21'; empty for fixed limits

    def describe(self, most: int = 20) -> str:
        """The rule, the verdict (with the limit's place in the spec) and the first `most`
        findings, one per line."""
        source = f"; from {self.source}" if self.source else ""
        head = f"{self.name}: {self.status} ({self.rule}; measured {_num(self.value)}{source})"
        lines = [head]
        for f in self.findings[:most]:
            also = f" [{', '.join(f.related)}]" if f.related else ""
            lines.append(f"  {f.path}: {f.message}{also}")
        if len(self.findings) > most:
            lines.append(f"  ... and {len(self.findings) - most} more")
        return "\n".join(lines)


class Check(NamedTuple):
    """A check in the catalogue: name, its limit in the spec, the rule in words, the function."""

    name: str
    limit: Callable[[Any], float | None]  # spec -> limit; None: reported, never fails
    rule: Callable[[float | None], str]  # limit -> the rule in words
    run: Callable[[Dataset, float | None], Outcome]
    at_least: bool = False  # the limit is a minimum (else a maximum)
    tasks: frozenset[str] = frozenset({"classification", "detection"})
    formats: frozenset[str] = frozenset()  # data.format values it applies to; empty: all
    key: tuple[str, ...] = ()  # the spec key of its limit; empty: a fixed limit

    def verdict(self, ds: Dataset, limit: float | None, source: str = "") -> CheckResult:
        """Run the check against `limit` (the spec's, or a generated test's), set at `source`."""
        out = self.run(ds, limit)
        if limit is None:
            status: Status = "info"
        elif out.value < limit if self.at_least else out.value > limit:
            status = "fail"
        else:
            status = "pass"
        return CheckResult(
            self.name, self.rule(limit), status, out.value, limit, tuple(out.findings), source
        )


def limit_rule(what: str, fraction: bool = False) -> Callable[[float | None], str]:
    """The rule of a check whose limit is a most allowed count (or fraction) of `what`."""

    def rule(limit: float | None) -> str:
        if limit is None:
            return f"{what}: reported"
        if limit == 0:
            return f"no {what}"
        if fraction:  # the limit as the fraction the measured value is, and as a percentage
            return f"at most {limit:g} ({limit * 100:.3g}%) {what}"
        return f"at most {limit:g} {what}"

    return rule


def _num(value: float) -> str:
    """A measured value as the check's description shows it: inf and nan as themselves."""
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if value != int(value) else str(int(value))


def catalogue() -> list[Check]:
    """Every check, in report order."""
    from cvspec.data import checks_files, checks_labels

    return [*checks_labels.CHECKS, *checks_files.CHECKS]


def applicable(spec: Any) -> list[Check]:
    """The checks that apply to a spec's task and data format, in report order."""
    return [
        c
        for c in catalogue()
        if spec.task in c.tasks and (not c.formats or spec.data.format in c.formats)
    ]


def run_checks(ds: Dataset, sources: dict[str, str] | None = None) -> list[CheckResult]:
    """Every applicable check against the spec's limits; `sources` (check_sources) says
    where the spec sets each."""
    where = sources or {}
    results = []
    for check in applicable(ds.spec):
        limit = check.limit(ds.spec)
        results.append(check.verdict(ds, limit, "" if limit is None else where.get(check.name, "")))
    return results


def quality(*key: str) -> tuple[str, ...]:
    """The spec key data.quality.<key...>."""
    return ("data", "quality", *key)


def check_sources(loaded: Any, root: Path | None = None) -> dict[str, str]:
    """Check name -> where the composed spec sets its limit, as the evaluate gates cite theirs:
    'specs/x.yaml:21' (a path under `root` relative to it), '--set ...', 'profile ci (...)',
    or 'default data.quality.<key>' when the spec leaves it at its default."""
    raw = loaded.raw
    out = {}
    for check in catalogue():
        if not check.key:
            continue
        origin = raw.values.get(check.key) or raw.keys.get(check.key)
        if origin is None or origin.kind == "default":
            out[check.name] = f"default {'.'.join(check.key)}"
            continue
        file = Path(origin.file or "")
        if root is not None and file.is_absolute() and file.is_relative_to(root.resolve()):
            origin = origin._replace(file=file.relative_to(root.resolve()).as_posix())
        out[check.name] = origin.describe()
    return out
