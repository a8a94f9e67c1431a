"""A YOLO view of a COCO dataset, for ultralytics, which trains from YOLO label files only.

The view lives in the run folder: `yolo/images/<split>/` holds a link to each image the data
stage keeps (data.exclude applied, its split assignment), and the label file ultralytics looks
for beside it (the image path with its last `images/` folder as `labels/`, suffix `.txt`)
holds the image's boxes from the annotations, class ids in the spec's class order. The
dataset folder itself is never written to.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cvspec.errors import CvspecError, UsageError

VIEW = "yolo"  # the view's folder in the run


def coco_view(data: dict[str, Any], run_path: Path) -> dict[str, Any]:
    """data.yaml for ultralytics from the generated one of a COCO dataset: its cvspec keys
    replaced by the view's split folders, and the class names the annotations give."""
    from cvspec.data.index import SPLITS, label_file, read_layout
    from cvspec.generate.builtin.train_config import COCO_KEY, EXCLUDE_KEY

    coco = data.pop(COCO_KEY)
    exclude = data.pop(EXCLUDE_KEY, None) or []
    root = Path(data["path"])
    section = _data_section(root, coco, exclude)
    layout = read_layout(SimpleNamespace(data=section), root)
    view = run_path / VIEW
    shutil.rmtree(view, ignore_errors=True)  # made again: nothing stale, no old label cache
    counts = dict.fromkeys(SPLITS, 0)
    taken: set[str] = set()
    for record in layout.entries:
        link = _free_name(view / "images" / record.split / record.path, taken)
        label = Path(label_file(link.as_posix()))
        taken.add(label.as_posix())
        link.parent.mkdir(parents=True, exist_ok=True)
        label.parent.mkdir(parents=True, exist_ok=True)
        _link(root / record.path, link)
        lines = [f"{b.cls} {b.cx:.6f} {b.cy:.6f} {b.w:.6f} {b.h:.6f}\n" for b in record.boxes]
        label.write_text("".join(lines), encoding="utf-8")  # empty: a background image
        counts[record.split] += 1
    for split in ("train", "val"):
        if not counts[split]:
            raise UsageError(
                f"the {split} split has no image of the COCO dataset at {root} "
                f"({sum(counts.values())} images in all, after data.exclude): add images or "
                "change data.splits"
            )
    for split, count in counts.items():
        data.pop(split, None)
        if count:
            data[split] = str(view / "images" / split)
    data["nc"] = len(layout.classes)
    data["names"] = dict(enumerate(layout.classes))
    return data


def _data_section(root: Path, coco: dict[str, Any], exclude: list[str]) -> Any:
    """The spec's data section as the reader takes it, checked by the spec's own model."""
    from pydantic import ValidationError

    from cvspec.spec.model import DetectionData

    try:
        return DetectionData.model_validate(
            {
                "path": str(root),
                "format": "coco",
                "classes": coco.get("classes", "auto"),
                "splits": coco.get("splits", {}),
                "exclude": list(exclude),
            }
        )
    except ValidationError as exc:
        raise CvspecError(
            f"the training config's COCO settings are not valid ({exc.error_count()} errors: "
            f"{exc.errors()[0]['msg']}): run `cvspec build` again"
        ) from None


def _free_name(link: Path, taken: set[str]) -> Path:
    """`link`, or `stem~N.suffix` beside it when its label file is another image's already
    (x.jpg and x.png share x.txt under ultralytics' rule)."""
    from cvspec.data.index import label_file

    candidate, n = link, 0
    while label_file(candidate.as_posix()) in taken:
        n += 1
        candidate = link.with_name(f"{link.stem}~{n}{link.suffix}")
    return candidate


def _link(target: Path, link: Path) -> None:
    """A symbolic link to the image; a copy where the file system has none."""
    try:
        os.symlink(target, link)
    except OSError:
        shutil.copyfile(target, link)
