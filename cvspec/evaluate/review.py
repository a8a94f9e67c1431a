"""Label review: the evaluated images the model most confidently puts in another class.

A wrong label looks, to a model that learned the rest of the data, like a confident mistake:
these are the first images a person should look at when cleaning labels. The list is only a
queue for review; a confident mistake can as well be the model's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvspec.atomic import write_text

LIMIT = 25  # images in the queue; the rest of the mistakes are in the confusion matrix


def candidates(
    logits: Any, records: Sequence[Any], classes: Sequence[str], limit: int = LIMIT
) -> list[dict[str, Any]]:
    """The misclassified images, most confident first: path, label, prediction, both scores."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    probs = z / z.sum(axis=1, keepdims=True)
    found = []
    for record, p in zip(records, probs, strict=True):
        guess, label = int(p.argmax()), int(record.label)
        if guess != label:
            found.append(
                {
                    "path": record.path,
                    "label": classes[label],
                    "predicted": classes[guess],
                    "confidence": round(float(p[guess]), 4),
                    "label_probability": round(float(p[label]), 4),
                }
            )
    found.sort(key=lambda c: (-c["confidence"], c["path"]))
    return found[:limit]


def queue_summary(queued: int, misclassified: Any) -> str:
    """`N image(s) the model puts in another class`, or `the N most confident of M ...` when
    the queue holds only the first LIMIT of them."""
    if isinstance(misclassified, (int, float)) and misclassified > queued:
        return (
            f"the {queued} most confident of {int(misclassified)} evaluated images the model "
            "puts in another class"
        )
    return f"{queued} evaluated image(s) the model puts in another class"


def write_review(
    out: Path,
    items: list[dict[str, Any]],
    data_path: str,
    split: str,
    misclassified: int | None = None,
) -> None:
    """label_review.json and label_review.md in the evaluate stage's folder."""
    write_text(out / "label_review.json", json.dumps(items, indent=2) + "\n")
    what = queue_summary(len(items), misclassified)
    lines = [
        "# Label review",
        "",
        f"Of the {split} split (under `{data_path}`): {what}, most confident first.",
        "Look at each: correct its label in the spec's `data.relabel` (the file stays where it "
        "is), add it to `data.exclude` if it does not belong in the dataset, or leave it if the "
        "model is wrong.",
        "",
    ]
    if items:
        lines += ["| image | label | predicted | confidence | p(label) |", "|---|---|---|---|---|"]
        lines += [
            f"| `{c['path']}` | {c['label']} | {c['predicted']} | {c['confidence']:.3f} | "
            f"{c['label_probability']:.3f} |"
            for c in items
        ]
        lines += [
            "",
            "The corrections, if the model is right: keep the lines you agree with as entries of "
            "`data.relabel` in the spec (under `data:`, indented below `relabel:`). To review "
            "them in Label Studio instead, import `label_review.labelstudio.json` with the "
            "labelling config `label_studio.xml` (both beside this file; `cvspec review SPEC` "
            "writes them for another image root), then `cvspec relabel SPEC EXPORT.json`.",
            "",
            "```yaml",
            *(f"{_yaml_key(c['path'])}: {_yaml_key(c['predicted'])}" for c in items),
            "```",
        ]
    else:
        lines.append("The model classifies every image of the split as labelled.")
    write_text(out / "label_review.md", "\n".join(lines) + "\n")


def _yaml_key(text: str) -> str:
    """`text` as a double-quoted YAML scalar that reads back as the same string under YAML 1.1
    and 1.2 alike (no '3' read as a number, no 'no' as a boolean): JSON's string syntax, with
    the characters as they are (UTF-8, not escapes), but for those YAML does not print."""
    import re

    quoted = json.dumps(text, ensure_ascii=False)
    return re.sub(r"[\x7f-\x9f\u2028\u2029\ufeff]", lambda m: f"\\u{ord(m[0]):04x}", quoted)
