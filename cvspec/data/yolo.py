"""Read a YOLO dataset: images/ with a mirrored labels/ tree of `class cx cy w h` text files."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from cvspec.data.files import DETECTION_EXTENSIONS, list_images, walk_files
from cvspec.data.index import (
    Box,
    Layout,
    Problem,
    Record,
    problem,
    split_example,
    split_folders,
    split_of,
)
from cvspec.errors import CvspecError, SpecValueError


def label_path(image: Path, root: Path) -> Path:
    """Ultralytics' rule: the last `images` folder of the path becomes `labels`, suffix .txt."""
    parts = list(image.relative_to(root).parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return root.joinpath(*parts).with_suffix(".txt")


def read_yolo(data: Any, root: Path) -> Layout:
    """Boxes per image from its label file. An empty label file marks a background image; a
    missing one is a 'missing_labels' problem (the image has no boxes, as ultralytics reads it)."""
    folders = split_folders(data.splits, root)
    if folders == {"": ""}:
        folders = {"": "images"}
        if not (root / "images").is_dir():
            raise _no_images_folder(root)
    classes = tuple(data.classes) if data.classes != "auto" else ()
    problems = _check_data_yaml(root, classes)
    entries: list[Record] = []
    used_labels: set[Path] = set()
    others: list[str] = []  # files in image folders that are not images of a detector
    for split, folder in folders.items():
        for image in list_images(root / folder, DETECTION_EXTENSIONS, others):
            rel = image.relative_to(root).as_posix()
            labels = label_path(image, root)
            used_labels.add(labels)
            boxes: tuple[Box, ...] = ()
            if labels.is_file():
                boxes = _read_labels(labels, root, problems)
            else:
                where = labels.relative_to(root).as_posix()
                why = f"no label file {where} (an empty one marks a background image)"
                problems.append(problem(rel, why, "missing_labels"))
            entries.append(Record(rel, split_of(split, rel, data.splits), boxes=boxes))
    orphans: set[Path] = set()
    for folder in folders.values():
        label_folder = label_path(root / folder / "x.jpg", root).parent
        if label_folder.is_dir():
            for path in walk_files(label_folder):
                if path.suffix == ".txt" and path not in used_labels and path not in orphans:
                    orphans.add(path)
                    rel = path.relative_to(root).as_posix()
                    problems.append(problem(rel, "label file without an image"))
    # darknet's layout keeps x.txt beside x.jpg (no images/ folder): those are labels, read or
    # reported above, not files the image folders hold in vain
    kept = {Path(p) for p in others} - used_labels - orphans
    skipped = tuple(sorted(p.relative_to(root).as_posix() for p in kept))
    return Layout("yolo", classes, tuple(entries), tuple(problems), skipped=skipped)


def _no_images_folder(root: Path) -> CvspecError:
    """Ratio splits read DATA/images/; a dataset exported per split (Roboflow: train/images,
    valid/images) is named, with the folder splits that read it."""
    message = f"YOLO dataset without an images/ folder: {root / 'images'}"
    found = sorted(p.relative_to(root).as_posix() for p in root.glob("*/images") if p.is_dir())
    if not found:
        return CvspecError(message)
    example = split_example(found)
    return SpecValueError(
        ("data", "path"),
        f"{message}; it holds {', '.join(f + '/' for f in found)} instead",
        "ratio splits read one images/ folder; give the split folders"
        + (f", e.g. splits: {{{example}}}" if example else ""),
    )


def parse_line(line: str) -> Box | str:
    """One label line as a Box (polygons become their bounding box), or why it is malformed."""
    fields = line.split()
    usage = "expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...' for a polygon)"
    if len(fields) == 6:  # `yolo predict save_txt=True save_conf=True` output as labels
        return (
            f"6 values (a box and a confidence, as predictions saved with save_conf are?); {usage}"
        )
    if len(fields) < 5 or (len(fields) > 5 and len(fields) % 2 == 0):
        return f"{len(fields)} values; {usage}"
    try:
        number = float(fields[0])  # ultralytics reads '1.0' as class 1, as any label value
        values = [float(v) for v in fields[1:]]
    except ValueError:
        return f"not numbers: {line.strip()!r}; {usage}"
    if not number.is_integer():
        return f"class id {fields[0]!r} is not a whole number; {usage}"
    cls = int(number)
    if len(values) == 4:
        cx, cy, w, h = values
        return Box(cls, cx, cy, w, h)
    (x0, x1), (y0, y1) = _span(values[0::2]), _span(values[1::2])
    return Box(cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def _span(values: list[float]) -> tuple[float, float]:
    """Lowest and highest polygon coordinate; nan when one is nan (min and max may drop it),
    so the boxes check still sees it."""
    if any(math.isnan(v) for v in values):
        return math.nan, math.nan
    return min(values), max(values)


def _read_labels(path: Path, root: Path, problems: list[Problem]) -> tuple[Box, ...]:
    rel = path.relative_to(root).as_posix()
    try:
        # utf-8-sig, as ultralytics reads labels: a file saved with a byte-order mark (Windows
        # editors) is read, its first line is no "not numbers" finding
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(problem(rel, f"cannot read the label file: {exc}"))
        return ()
    boxes: list[Box] = []
    widths: dict[int, int] = {}  # values per line -> the first line that has that many
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        widths.setdefault(len(line.split()), number)
        parsed = parse_line(line)
        if isinstance(parsed, str):
            problems.append(problem(f"{rel}:{number}", parsed))
        else:
            boxes.append(replace(parsed, source=f"{rel}:{number}"))
    polygon = next((n for w, n in sorted(widths.items()) if w > 6), None)
    if polygon is not None and 5 in widths:
        # ultralytics reads a file with any line of more than 6 values as polygons and then
        # rejects one with a box line too: the image is left out of training as corrupt
        problems.append(
            problem(
                rel,
                f"mixes box lines ('class cx cy w h', line {widths[5]}) and polygon lines (line "
                f"{polygon}): ultralytics leaves the whole image out of training ('labels mix "
                "segment and detection rows'); write every object of a file the same way",
            )
        )
    return tuple(boxes)


def _check_data_yaml(root: Path, classes: tuple[str, ...]) -> list[Problem]:
    """A data.yaml (ultralytics) or a list of names (classes.txt of darknet, labelImg and
    Label Studio's YOLO export; obj.names of CVAT's YOLO 1.1 export: one name per line, in
    class id order) next to the dataset must name the same classes, in the same order, as
    the spec: the label files hold only the ids."""
    found = [_check_names(root, name, classes) for name in NAME_LISTS]
    return [p for p in found if p is not None] + _check_yaml(root, classes)


NAME_LISTS = ("classes.txt", "obj.names")  # files of class names, one a line, in id order


def _check_names(root: Path, name: str, classes: tuple[str, ...]) -> Problem | None:
    path = root / name
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return problem(name, f"cannot read: {exc}")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if tuple(names) != classes:
        return problem(name, f"names {names} differ from data.classes {list(classes)}", "classes")
    return None


def _check_yaml(root: Path, classes: tuple[str, ...]) -> list[Problem]:
    path = root / "data.yaml"
    if not path.is_file():
        return []
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        doc = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
    except (YAMLError, OSError, UnicodeDecodeError, TypeError) as exc:
        return [problem("data.yaml", f"cannot read: {exc}")]
    if not isinstance(names, list):
        return [problem("data.yaml", "has no 'names' list")]
    if tuple(str(n) for n in names) != classes:
        msg = f"names {names} differ from data.classes {list(classes)}"
        return [problem("data.yaml", msg, "classes")]
    return []
