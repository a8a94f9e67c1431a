"""Classification answers: each row ranked on its own, ties in label order, rounded confidences."""

from __future__ import annotations

import numpy as np

from cvspec.serve.model import probabilities
from cvspec.serve.postprocess import classify


def test_each_row_of_a_batch_gets_its_own_ranking() -> None:
    labels = tuple("abcdefg")
    probs = np.array(
        [
            [0.05, 0.4, 0.05, 0.3, 0.1, 0.05, 0.05],
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.4],  # ties: the earlier label ranks first
        ]
    )
    first, second = classify(probs, labels)
    assert (first["label"], first["index"], first["confidence"]) == ("b", 1, 0.4)
    assert [t["label"] for t in first["top"]] == ["b", "d", "e", "a", "c"]
    assert [t["label"] for t in second["top"]] == ["g", "a", "b", "c", "d"]
    assert all(type(t["confidence"]) is float for t in first["top"] + second["top"])


def test_fewer_classes_than_top_k_and_logits_become_probabilities() -> None:
    answers = classify(probabilities(np.array([[2.0, 0.0], [0.0, 1.0 / 3]])), ("cat", "dog"))
    assert [a["label"] for a in answers] == ["cat", "dog"]
    assert [len(a["top"]) for a in answers] == [2, 2]
    assert answers[0]["confidence"] == round(float(np.exp(2) / (np.exp(2) + 1)), 6)
    assert answers[1]["top"][1]["confidence"] == round(1 / (1 + np.exp(1 / 3)), 6)
