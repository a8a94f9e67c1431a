"""The data report: report.json, report.md, the class histogram PNG, and the drift baseline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvspec.atomic import staged, write_text
from cvspec.data.checks import CheckResult, Dataset
from cvspec.data.checks_labels import class_counts
from cvspec.data.index import SPLITS

MAX_FINDINGS_JSON = 1000  # per check; the count is always complete
MAX_FINDINGS_MD = 20
_COLOURS = {"train": (59, 117, 175), "val": (239, 134, 54), "test": (81, 158, 62)}


def split_counts(ds: Dataset) -> dict[str, dict[str, int]]:
    """Split -> class name -> images, for the splits that have images."""
    names = ds.index.classes
    out = {}
    for split in SPLITS:
        if any(r.split == split for r in ds.index.records):
            out[split] = {names[c]: n for c, n in sorted(class_counts(ds, split).items())}
    return out


def drift_baseline(ds: Dataset) -> dict[str, Any]:
    """Brightness, contrast, width and height summaries over the decoded training images, and
    which images those are (`train_images`: the export stage ships the baseline with a run
    only when the run trained on the same images)."""
    from cvspec.data.version import images_digest
    from cvspec.imagestats import summarize

    pairs = [
        (r, f)
        for r, f in zip(ds.index.records, ds.facts, strict=True)
        if r.split == "train" and not f.error
    ]
    train = [f for _, f in pairs]
    return {
        "brightness": summarize([f.brightness for f in train]),
        "contrast": summarize([f.contrast for f in train]),
        "width": summarize([float(f.width) for f in train]),
        "height": summarize([float(f.height) for f in train]),
        "train_images": images_digest(r for r, _ in pairs),
    }


def report_data(
    ds: Dataset,
    results: Sequence[CheckResult],
    data_path: str,
    dvc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything report.json holds; no clock, so an unchanged dataset gives the same bytes.

    `dataset` says which data this is: the fingerprint of its images and labels, and the
    `.dvc` file (with its md5) that versions it, when there is one."""
    from cvspec.data.version import fingerprint

    records = ds.index.records
    return {
        "project": ds.spec.project.name,
        "data": data_path,
        "dataset": {"fingerprint": fingerprint(records), "dvc": dvc},
        "excluded": {
            "count": len(ds.index.excluded),
            "paths": list(ds.index.excluded[:MAX_FINDINGS_JSON]),
            "unmatched_patterns": list(ds.index.unmatched),
        },
        "relabeled": {
            "count": len(ds.index.relabeled),
            "labels": [r._asdict() for r in ds.index.relabeled[:MAX_FINDINGS_JSON]],
            "unknown_paths": list(ds.index.unknown_relabels),
        },
        "format": ds.index.format,
        "classes": list(ds.index.classes),
        "images": {
            "total": len(records),
            "decoded": len(ds.decoded),
            **{s: sum(r.split == s for r in records) for s in SPLITS},
        },
        "class_counts": split_counts(ds),
        "ok": all(r.status != "fail" for r in results),
        "checks": [
            {
                "name": r.name,
                "rule": r.rule,
                "status": r.status,
                "value": _finite(r.value),
                "limit": r.limit,
                "source": r.source,
                "findings_count": len(r.findings),
                "findings": [
                    {"path": f.path, "message": f.message, "related": list(f.related)}
                    for f in r.findings[:MAX_FINDINGS_JSON]
                ],
            }
            for r in results
        ],
    }


def _finite(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: a verdict, the summary table, the histogram, then each check's findings."""
    images = report["images"]
    verdict = "all checks pass" if report["ok"] else "**some checks FAIL**"
    lines = [
        f"# Data report: {report['project']}",
        "",
        f"{images['total']} images in `{report['data']}` ({report['format']}): "
        f"{images['train']} train, {images['val']} val, {images['test']} test; {verdict}.",
        "",
        "| check | status | measured | limit | findings | rule | limit from |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report["checks"]:
        limit = "" if c["limit"] is None else f"{c['limit']:g}"
        status = c["status"].upper() if c["status"] == "fail" else c["status"]
        value = c["value"] if isinstance(c["value"], str) else f"{c['value']:.4g}"
        source = f"`{c['source']}`" if c.get("source") else ""
        lines.append(
            f"| {c['name']} | {status} | {value} | {limit} | {c['findings_count']} | {c['rule']} "
            f"| {source} |"
        )
    lines += ["", "![images per class](class_histogram.png)", ""]
    for c in report["checks"]:
        if not c["findings"]:
            continue
        source = (
            f", limit from `{c['source']}`" if c["status"] == "fail" and c.get("source") else ""
        )
        lines += [f"## {c['name']} ({c['status']}{source})", ""]
        for f in c["findings"][:MAX_FINDINGS_MD]:
            also = f" (see `{'`, `'.join(f['related'])}`)" if f["related"] else ""
            lines.append(f"- `{f['path']}`: {f['message']}{also}")
        if c["findings_count"] > MAX_FINDINGS_MD:
            lines.append(f"- ... {c['findings_count'] - MAX_FINDINGS_MD} more in report.json")
        lines.append("")
    lines += _excluded_markdown(report.get("excluded") or {})
    lines += _relabeled_markdown(report.get("relabeled") or {})
    return "\n".join(lines).rstrip() + "\n"


def _relabeled_markdown(relabeled: dict[str, Any]) -> list[str]:
    """The labels data.relabel corrected, and its paths that name no image (stale entries)."""
    count, stale = relabeled.get("count", 0), relabeled.get("unknown_paths", [])
    if not count and not stale:
        return []
    lines = ["## labels corrected by data.relabel", ""]
    shown = relabeled.get("labels", [])[:MAX_FINDINGS_MD]
    lines += [f"- `{r['path']}`: {r['was']} -> {r['now']}" for r in shown]
    if count > len(shown):
        lines.append(f"- ... {count - len(shown)} more")
    lines += [
        f"- `{p}` names no image (or an excluded one): remove it from data.relabel" for p in stale
    ]
    return [*lines, ""]


def _excluded_markdown(excluded: dict[str, Any]) -> list[str]:
    """What data.exclude left out, and its patterns that match nothing (stale entries)."""
    count, stale = excluded.get("count", 0), excluded.get("unmatched_patterns", [])
    if not count and not stale:
        return []
    lines = ["## excluded by data.exclude", ""]
    paths = excluded.get("paths", [])
    lines += [f"- `{p}`" for p in paths[:MAX_FINDINGS_MD]]
    if count > min(len(paths), MAX_FINDINGS_MD):
        lines.append(f"- ... {count - min(len(paths), MAX_FINDINGS_MD)} more")
    lines += [f"- pattern `{p}` matches no image: remove it from data.exclude" for p in stale]
    return [*lines, ""]


def draw_name(draw: Any, xy: tuple[float, float], name: str) -> None:
    """A class name on a chart; a PIL without FreeType has a Latin-1 font only, so a name in
    another script falls back to '?'s there rather than failing the stage."""
    try:
        draw.text(xy, name, fill="black")
    except UnicodeEncodeError:
        draw.text(xy, name.encode("latin-1", "replace").decode("latin-1"), fill="black")


def class_histogram(counts: dict[str, dict[str, int]], classes: Sequence[str], path: Path) -> None:
    """Draw images per class, stacked by split, as a PNG (PIL only)."""
    from PIL import Image, ImageDraw

    bar = max(2, min(28, 1600 // max(len(classes), 1) - 2))  # wide datasets get thin bars
    gap, top, bottom, left = max(1, bar // 3), 30, 30, 50
    width = left + max(len(classes), 1) * (bar + gap) + gap
    height = 280
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    totals = [sum(counts[s].get(c, 0) for s in counts) for c in classes]
    peak = max(totals, default=0) or 1
    scale = (height - top - bottom) / peak
    base = height - bottom
    draw.line([(left - 4, base), (width - gap, base)], fill="black")
    draw.text((4, top - 6), str(peak), fill="black")
    draw.text((4, base - 6), "0", fill="black")
    for i, name in enumerate(classes):
        x = left + gap + i * (bar + gap)
        y: float = base
        for split in counts:
            h = counts[split].get(name, 0) * scale
            if h > 0:
                draw.rectangle([x, y - h, x + bar, y], fill=_COLOURS[split])
            y -= h
        if bar >= 20:
            draw_name(draw, (x, base + 6), name[:6])
    for n, split in enumerate(counts):
        draw.rectangle([left + n * 70, 8, left + n * 70 + 10, 18], fill=_COLOURS[split])
        draw.text((left + n * 70 + 14, 7), split, fill="black")
    with staged(path) as tmp:
        img.save(tmp, format="PNG")


def write_report(
    folder: Path,
    ds: Dataset,
    results: Sequence[CheckResult],
    data_path: str,
    dvc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.json, report.md, class_histogram.png and stats.json into folder."""
    report = report_data(ds, results, data_path, dvc)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_text(folder / "report.md", report_markdown(report))
    stats = json.dumps(drift_baseline(ds), indent=2, sort_keys=True) + "\n"
    write_text(folder / "stats.json", stats)
    class_histogram(report["class_counts"], ds.index.classes, folder / "class_histogram.png")
    return report
