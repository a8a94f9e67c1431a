"""What a training run's id leaves out: the keys that do not change what a run computes.

Kept apart from the trainers (which import torch) so `cvspec diff` and `check` can tell a
reviewer whether a change retrains without importing them.
"""

from __future__ import annotations

# Classification config keys under train: that do not change a run's result.
CONFIG_NOT_IN_ID = ("workers",)
# Data keys whose effect training sees only through the train and val records (which images,
# with which labels) that the id hashes: relabelling or excluding a test image keeps the run.
DATA_BY_RECORDS = ("exclude", "relabel")
# The config sections a classification run's id reads.
CONFIG_SECTIONS = ("data", "model", "train")
# Detection args.yaml keys that do not change a run's result (where it goes, plots, workers).
ARGS_NOT_IN_ID = ("workers", "project", "name", "exist_ok", "plots", "data")
