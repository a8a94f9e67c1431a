"""Training data: the dataset index as torch datasets and loaders, seeded per image and epoch."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cvspec import cpus
from cvspec.data.decode import decode
from cvspec.errors import CvspecError
from cvspec.preprocess import Preprocess, to_array


def load_index(data: Any, root: Path) -> Any:
    """The dataset index (cvspec.data.index) of a checked `data` section, read from disk."""
    from cvspec.data.index import build_index

    data_root = Path(data.path)
    data_root = data_root if data_root.is_absolute() else root / data_root
    return build_index(SimpleNamespace(data=data), data_root)


def usable(records: list[Any]) -> list[Any]:
    """Records that decoded when indexed (the data stage reports the others)."""
    return [r for r in records if r.mode and r.label is not None]


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, so each (seed, epoch, image) draws its own augmentation."""
    import hashlib

    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class ImageDataset:
    """Images of one split as model inputs through cvspec.preprocess, as the server sees them.

    Items are addressed by (epoch, index): the augmentation of an image depends only on the
    seed, the epoch and the image, never on worker count or on where a resumed run restarted.
    """

    def __init__(
        self,
        root: Path,
        records: list[Any],
        pre: Preprocess,
        seed: int,
        image_tf: Callable[[Any], Any] | None = None,
        tensor_tf: Callable[[Any], Any] | None = None,
    ) -> None:
        self.root, self.records, self.pre, self.seed = root, records, pre, seed
        self.image_tf, self.tensor_tf = image_tf, tensor_tf

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, int]:
        import torch

        epoch, index = key
        record = self.records[index]
        img = decode(self.root, record)
        if self.image_tf is None and self.tensor_tf is None:
            return torch.from_numpy(to_array([img], self.pre)[0]), int(record.label)
        gen = torch.default_generator  # what torchvision's transforms draw from
        saved = gen.get_state()
        gen.manual_seed(mix_seed(self.seed, epoch, index))
        try:
            if self.image_tf is not None:
                img = self.image_tf(img)
            x = torch.from_numpy(to_array([img], self.pre)[0])
            if self.tensor_tf is not None:
                x = self.tensor_tf(x)
        finally:
            gen.set_state(saved)  # the model's own random draws stay as they were
        return x, int(record.label)


class EpochSampler:
    """Yields (epoch, index): a fresh seeded shuffle per epoch, or the plain order.

    With several training processes, each takes every `world`-th item of the same order from
    its `rank` on; a shuffled order is first padded by repeating its head, so every process
    runs the same number of steps (gradients are averaged at each one)."""

    def __init__(self, size: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next iteration draws its order for."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.shuffle:
            return -(-self.size // self.world)
        return len(range(self.rank, self.size, self.world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        import numpy as np

        order: list[int] = list(range(self.size))
        if self.shuffle:
            rng = np.random.default_rng(mix_seed(self.seed, self.epoch, -1))
            order = rng.permutation(self.size).tolist()
            padded = len(self) * self.world
            order = (order * (padded // max(1, self.size) + 1))[:padded]
        return ((self.epoch, int(i)) for i in order[self.rank :: self.world])


def loader(
    dataset: ImageDataset,
    batch_size: int,
    workers: int,
    shuffle: bool,
    rank: int = 0,
    world: int = 1,
) -> Any:
    """A DataLoader over (epoch, index) keys, this process's shard; workers stay alive."""
    import torch

    if len(dataset) == 0:
        raise CvspecError("a training split has no usable images; run the data stage")
    # no more worker processes than CPUs this process may use (torch warns past that); the
    # augmentation of an image never depends on the worker count
    workers = min(workers, cpus.usable())
    sampler = EpochSampler(len(dataset), dataset.seed, shuffle, rank, world)
    items: Any = dataset  # a map-style dataset by protocol; torch's stubs want its base class
    return torch.utils.data.DataLoader(
        items,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),  # lets the copy to the GPU overlap compute
        drop_last=shuffle and len(sampler) > batch_size,
        # Linux's fork, even inside a sweep launcher's worker (joblib's loky changes the default)
        multiprocessing_context="fork" if workers > 0 and sys.platform == "linux" else None,
    )
