"""Read a COCO dataset: one JSON of images, categories and pixel boxes per split (or in all)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from cvspec.data.files import DETECTION_EXTENSIONS, extension, is_hidden
from cvspec.data.index import (
    Box,
    Declared,
    Layout,
    Problem,
    Record,
    problem,
    shown,
    split_example,
    split_of,
)
from cvspec.errors import CvspecError, SpecValueError


def read_coco(data: Any, root: Path) -> Layout:
    """Folder splits name a folder of images with one *.json, or a .json whose file_names are
    relative to data.path; ratio splits read the one *.json at data.path."""
    sources: dict[str, tuple[Path, Path]] = {}  # split ('' = by ratio) -> (json, image folder)
    if hasattr(data.splits, "train"):
        for split in ("train", "val", "test"):
            value = getattr(data.splits, split)
            if value is not None:
                sources[split] = _source(root, root / str(value), ("data", "splits", split))
    else:
        sources[""] = _source(root, root, ("data", "path"))
    files = {split: _load(path, root) for split, (path, _) in sources.items()}
    classes, category_index, problems = _classes(data, files, root)
    entries: list[Record] = []
    listed: dict[str, tuple[str, Any]] = {}  # image path -> (the entry listing it first, its id)
    skipped: list[str] = []  # listed images ultralytics does not train on (.gif, .jfif, ...)
    missing: list[tuple[Path, Path, list[str]]] = []  # (json, image folder, names not found)
    for split, (path, images) in sources.items():
        gone: list[str] = []
        entries.extend(
            _records(
                files[split], path, images, root, split, data, category_index[split], problems,
                listed, skipped, gone,
            )
        )  # fmt: skip
        missing.append((path, images, gone))
    if not entries and any(gone for _, _, gone in missing):
        raise _none_found(files, sources, missing, root)
    skipped_paths = tuple(sorted(set(skipped)))
    return Layout("coco", classes, tuple(entries), tuple(problems), skipped=skipped_paths)


def _none_found(
    files: dict[str, dict[str, Any]],
    sources: dict[str, tuple[Path, Path]],
    missing: list[tuple[Path, Path, list[str]]],
    root: Path,
) -> SpecValueError:
    """Not one listed image exists (image folders renamed or moved): the error at data.path
    says which file_names were looked for where, not that the folder has no images."""
    parts = []
    json_split = False  # a split given as a .json apart from its images (COCO's own layout)
    for (split, _), (path, images, gone) in zip(sources.items(), missing, strict=True):
        if not gone:
            continue
        where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        names = ", ".join(gone[:3]) + (f" (and {len(gone) - 3} more)" if len(gone) > 3 else "")
        part = (
            f"{where} lists {len(files[split]['images'])} images, none found: {names} "
            f"{'does' if len(gone) == 1 else 'do'} not exist (relative to {shown(images)}/)"
        )
        if split and path.parent != images:
            json_split = True
            holders = [
                d for d in sorted(images.iterdir()) if d.is_dir() and (d / gone[0]).is_file()
            ]
            if holders:
                part += f"; {gone[0]} is in {shown(holders[0])}/"
        parts.append(part)
    hint = (
        "a split given as a .json lists file_names relative to data.path; COCO's own layout "
        "(annotations/instances_train2017.json, images in train2017/) reads as split folders: "
        "move each .json into its image folder and give the folders, e.g. "
        "splits: {train: train2017, val: val2017}"
        if json_split
        else "a file_name is relative to the folder of its .json (data.path for ratio splits): "
        "were the image folders renamed or moved?"
    )
    return SpecValueError(("data", "path"), "; ".join(parts), hint, code="data-empty")


def _source(root: Path, target: Path, key: tuple[str, ...]) -> tuple[Path, Path]:
    if target.suffix == ".json":
        if not target.is_file():
            raise SpecValueError(key, f"COCO annotation file not found: {target}")
        return target, root
    if not target.is_dir():
        raise SpecValueError(key, f"folder not found: {target}")
    # a ._x.json beside x.json is macOS's resource fork (a copy to a FAT or exFAT drive)
    found = sorted(p for p in target.glob("*.json") if not is_hidden(p.name))
    if len(found) != 1:
        raise SpecValueError(
            key,
            f"expected exactly one COCO *.json in {target}, found {len(found)}",
            _no_json_hint(root, target) if not found else None,
        )
    return found[0], target


def _no_json_hint(root: Path, target: Path) -> str | None:
    """What a folder without a .json holds instead: a YOLO dataset, or (ratio splits) a
    .json in each of its folders, as Roboflow exports COCO: train/, valid/, test/."""
    if (target / "labels").is_dir() or (root / "labels").is_dir():
        return "is data.format right? A YOLO dataset has images/ and labels/ folders instead"
    if target != root:
        return None
    jsons = [p.parent.name for p in root.glob("*/*.json") if not is_hidden(p.name)]
    jsons = [f for f in jsons if not is_hidden(f)]
    folders = sorted({f for f in jsons if jsons.count(f) == 1})  # one .json each: a split
    if not folders:
        return None
    example = split_example(folders)
    return (
        f"its folders {', '.join(f + '/' for f in folders)} hold one .json each: give them as "
        "folder splits" + (f", e.g. splits: {{{example}}}" if example else "")
    )


def _load(path: Path, root: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CvspecError(f"cannot read COCO annotations {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise CvspecError(f"{path}: not a COCO annotation file (no 'images' list)")
    for key in ("annotations", "categories"):
        if not isinstance(doc.get(key, []), list):
            raise CvspecError(f"{path}: '{key}' must be a list")
    return doc


def _classes(
    data: Any, files: dict[str, dict[str, Any]], root: Path
) -> tuple[tuple[str, ...], dict[str, dict[int, int]], list[Problem]]:
    """Class names, per split: category id -> class index, and problems with the categories.

    A category id means what its own file says: each file maps its ids to classes by name,
    so a val.json numbering the categories differently from train.json (exported from another
    tool or task) is read right. Classes are matched by name, as pycocotools-based converters
    do. A category that only names other categories' supercategory and marks no annotation
    (Roboflow's dataset category: id 0, supercategory "none") is no class: Roboflow's own YOLO
    export leaves it out too."""
    per_file: dict[str, dict[int, str]] = {}
    for split, doc in files.items():
        names = per_file.setdefault(split, {})
        marks = [a.get("category_id") for a in doc.get("annotations", []) if isinstance(a, dict)]
        used = {cid for cid in marks if _is_id(cid)}
        cats = [c for c in doc.get("categories", []) if isinstance(c, dict)]
        for cat in cats:
            cid = cat.get("id")
            if isinstance(cid, float) and cid.is_integer():  # 1.0, as a script's json.dump wrote
                cid = int(cid)
            if not isinstance(cid, int) or isinstance(cid, bool):
                continue
            name = str(cat.get("name", cid))
            parent = any(c is not cat and c.get("supercategory") == name for c in cats)
            if parent and cid not in used:
                continue  # the dataset's own category (Roboflow), not a class
            names.setdefault(cid, name)
    _share_categories(per_file)
    problems: list[Problem] = []
    if data.classes == "auto":
        order: list[str] = []  # by id within each file, files in split order
        for names in per_file.values():
            for _, name in sorted(names.items()):
                if name not in order:
                    order.append(name)
        classes = tuple(order)
    else:
        classes = tuple(data.classes)
        reported: set[str] = set()
        for names in per_file.values():
            for cid, name in sorted(names.items()):
                if name not in classes and name not in reported:
                    reported.add(name)
                    msg = f"category {name!r} (id {cid}) is not in data.classes; its boxes ignored"
                    problems.append(problem("categories", msg, "classes"))
    # -1: a known category left out of data.classes (reported once above)
    index = {
        split: {cid: classes.index(name) if name in classes else -1 for cid, name in names.items()}
        for split, names in per_file.items()
    }
    return classes, index, problems


def _share_categories(per_file: dict[str, dict[int, str]]) -> None:
    """A file that lists no categories (split off another by a script) reads its ids as the
    other files name them, where those agree on every id."""
    given = [names for names in per_file.values() if names]
    merged: dict[int, str] = {}
    for names in given:
        for cid, name in names.items():
            if merged.setdefault(cid, name) != name:
                return  # the files disagree: which one an id means is unknown
    for names in per_file.values():
        if not names:
            names.update(merged)


def _records(
    doc: dict[str, Any],
    path: Path,
    images: Path,
    root: Path,
    split: str,
    data: Any,
    category_index: dict[int, int],
    problems: list[Problem],
    listed: dict[str, tuple[str, Any]],
    skipped: list[str],
    missing: list[str],
) -> list[Record]:
    """The images of one annotation file with their boxes; what is wrong goes to `problems`.
    `listed` holds the images earlier files (and entries) listed: one listed again is left out.
    An image ultralytics does not train on goes to `skipped`, the file_name of one that does not
    exist to `missing`."""
    where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    boxes: dict[Any, list[Box]] = {}
    sizes: dict[Any, tuple[float, float]] = {}
    names: dict[Any, str] = {}  # image id -> its path under data.path, for the problems
    resolved_root = root.resolve()
    for item in doc["images"]:
        if isinstance(item, dict) and _is_id(item.get("id")):
            # the first entry of an id counts (a later one is reported below)
            sizes.setdefault(item["id"], _size(item) or (0.0, 0.0))
            if isinstance(item.get("file_name"), str):
                image = (images / item["file_name"]).resolve()
                if image.is_relative_to(resolved_root):
                    names.setdefault(item["id"], image.relative_to(resolved_root).as_posix())
    for n, ann in enumerate(doc.get("annotations", [])):
        box = _box(ann, sizes, category_index)
        if isinstance(box, str):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            about = names.get(image_id, "") if _is_id(image_id) else ""
            problems.append(problem(f"{where}#annotations[{n}]", box, image=about))
        elif box is not None:
            boxes.setdefault(ann["image_id"], []).append(
                replace(box, source=f"{where}#annotations[{n}]")
            )
    out: list[Record] = []
    first_id: dict[Any, tuple[int, str]] = {}  # image id -> (images[] index, path) first given it
    for n, item in enumerate(doc["images"]):
        name = item.get("file_name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _is_id(item.get("id")):
            problems.append(problem(f"{where}#images[{n}]", "needs 'id' and 'file_name'"))
            continue
        image = (images / name).resolve()
        if not image.is_relative_to(resolved_root):
            why = f"{name!r} is outside data.path"
            if (images / Path(name).name).is_file():  # an exporter's absolute path
                why += (
                    f" ({Path(name).name!r} is in {shown(images)!r}: a file_name is read "
                    "relative to the folder of its .json)"
                )
            problems.append(problem(f"{where}#images[{n}]", why))
            continue
        rel = image.relative_to(resolved_root).as_posix()
        image_id = item["id"]
        if image_id in first_id and first_id[image_id][1] != rel:
            m, other = first_id[image_id]
            problems.append(
                problem(
                    f"{where}#images[{n}]",
                    f"image id {image_id!r} is given to {rel} and to {other} (images[{m}]): "
                    f"which image its annotations mark is unknown; {rel} is left out",
                    image=rel,
                )
            )
            continue
        if rel in listed:
            at, first_as = listed[rel]
            here = at.startswith(f"{where}#")
            count = len(boxes.get(image_id, ())) if image_id != first_as or not here else 0
            dropped = f"; its {count} annotation(s) are not used" if count else ""
            problems.append(
                problem(
                    f"{where}#images[{n}]",
                    f"{rel} is listed twice: as image id {first_as!r} "
                    f"({at.split('#', 1)[1] if here else at}) and as image id {image_id!r}; only "
                    f"the first is read{dropped}",
                    image=rel,
                )
            )
            continue
        listed[rel] = (f"{where}#images[{n}]", image_id)
        first_id.setdefault(image_id, (n, rel))
        if _size(item) is None:
            size = f"{item.get('width')!r} x {item.get('height')!r}"
            why = f"width and height must be numbers of pixels, got {size}"
            problems.append(problem(f"{where}#images[{n}]", why, image=rel))
        if not image.is_file():
            problems.append(problem(rel, f"listed in {where} but the file does not exist"))
            missing.append(name)
            continue
        if extension(rel) not in DETECTION_EXTENSIONS:
            skipped.append(rel)  # the skipped_files check says why; never counted or linked
            continue
        found = tuple(boxes.get(image_id, ()))
        width, height = sizes[image_id]
        declared = Declared(width, height, f"{where}#images[{n}]") if width and height else None
        out.append(Record(rel, split_of(split, rel, data.splits), boxes=found, declared=declared))
    return out


def _box(
    ann: Any, sizes: dict[Any, tuple[float, float]], category_index: dict[int, int]
) -> Box | str | None:
    """A COCO pixel box [x, y, w, h] as a normalised Box; None for a box to skip; or why bad."""
    if not isinstance(ann, dict) or not _is_id(ann.get("image_id")):
        return "needs 'image_id', 'category_id' and 'bbox'"
    # a crowd region (iscrowd: 1, an RLE mask over many objects) is no box to train on, and
    # the box is `bbox`, whatever the segmentation: as ultralytics' convert_coco reads COCO
    if ann.get("iscrowd"):
        return None
    bbox, cid = ann.get("bbox"), ann.get("category_id")
    if not (
        isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)
    ):
        return f"bbox must be [x, y, width, height], got {bbox!r}"
    width, height = sizes.get(ann["image_id"], (0.0, 0.0))
    if width <= 0 or height <= 0:
        return f"image id {ann['image_id']!r} is not listed with a width and height"
    if not _is_id(cid) or cid not in category_index:
        return f"category_id {cid!r} is not one of the file's categories"
    if category_index[cid] < 0:
        return None
    x, y, w, h = (float(v) for v in bbox)
    return Box(
        category_index[cid], (x + w / 2) / width, (y + h / 2) / height, w / width, h / height
    )


def _is_id(value: Any) -> bool:
    """Whether an image or category id can be one: a number or a string (not a list, dict or
    null, which an export gone wrong may hold)."""
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _size(item: dict[str, Any]) -> tuple[float, float] | None:
    """An images[] entry's width and height ((0, 0) when left out); None when they are not
    numbers ('640px'), which the entry is reported for."""
    try:  # a number, or one as a string ("640"), as json.loads reads either
        width, height = float(item.get("width") or 0), float(item.get("height") or 0)
    except (TypeError, ValueError):
        return None
    return (width, height) if math.isfinite(width) and math.isfinite(height) else None
