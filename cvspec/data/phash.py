"""Perceptual hashes and their near-duplicate groups, found by multi-index hashing (not n^2)."""

from __future__ import annotations

import itertools
from functools import cache
from typing import Any

HASH_BITS = 64
_SIDE = 32  # the image is shrunk to 32x32 and its 8x8 lowest DCT frequencies are kept


@cache
def _dct_rows() -> Any:
    """The 8 lowest-frequency rows of the 32-point DCT-II matrix."""
    import numpy as np

    k = np.arange(_SIDE)
    return np.cos(np.pi * (2 * k[None, :] + 1) * k[:8, None] / (2 * _SIDE)).astype(np.float32)


@cache
def _pooled_dct_rows() -> Any:
    """_dct_rows applied to a 2x2 sum-shrink: 8x64, so a 64x64 image needs no shrink step."""
    import numpy as np

    return np.repeat(_dct_rows(), 2, axis=1)


def phash(grey: Any, pixels: Any = None) -> int:
    """64-bit pHash of a grey PIL image: low DCT frequencies above their median (as imagehash).

    `pixels`, the image as a float32 array, saves a copy when the image is 64x64.
    """
    import numpy as np
    from PIL import Image

    if pixels is not None and pixels.shape == (2 * _SIDE, 2 * _SIDE):
        rows = _pooled_dct_rows()  # the 2x2 box shrink to 32x32 folded into the DCT
        low = (rows @ pixels @ rows.T).ravel()
    else:
        w, h = grey.size
        if w % _SIDE == 0 and h % _SIDE == 0 and w == h:
            shrunk = grey.reduce(w // _SIDE) if w > _SIDE else grey
        else:
            shrunk = grey.resize((_SIDE, _SIDE), Image.Resampling.BOX)
        small = np.frombuffer(shrunk.tobytes(), np.uint8).reshape(_SIDE, _SIDE)
        rows = _dct_rows()
        low = (rows @ small.astype(np.float32) @ rows.T).ravel()
    middle = np.partition(low, (31, 32))[31:33]  # the median of 64 values, without a sort
    bits = low > (middle[0] + middle[1]) / 2
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def phashes(pixels: Any) -> list[int]:
    """phash of each 64x64 grey image of a (n, 64, 64) uint8 stack, as phash() gives them."""
    import numpy as np

    rows = _pooled_dct_rows()
    low = (rows @ pixels.astype(np.float32) @ rows.T).reshape(len(pixels), 64)
    middle = np.partition(low, (31, 32), axis=1)[:, 31:33]
    bits = low > ((middle[:, 0] + middle[:, 1]) / 2)[:, None]
    packed = np.packbits(bits, axis=1)
    return [int(v) for v in packed.view(">u8").ravel()]


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two hashes."""
    return (a ^ b).bit_count()


def popcount(x: Any) -> Any:
    """Bit counts of a uint64 array."""
    import numpy as np

    return np.bitwise_count(x)


def _plan(distance: int, count: int) -> tuple[int, int]:
    """(chunks, radius) of the cheapest multi-index search for this distance and size.

    Two hashes within `distance` agree within `distance // chunks` bits on at least one chunk
    (pigeonhole), so each chunk is a hash table probed with every key at most `radius` away.
    """
    best: tuple[float, int, int] = (float("inf"), 1, distance)
    for chunks in (1, 2, 4, 8, 16):
        bits, radius = HASH_BITS // chunks, distance // chunks
        probes = sum(_comb(bits, i) for i in range(radius + 1))
        cost = count * chunks * probes * (1 + count / 2**bits)
        if cost < best[0]:
            best = (cost, chunks, radius)
    return best[1], best[2]


def _comb(n: int, k: int) -> int:
    from math import comb

    return comb(n, k)


def _flips(bits: int, radius: int) -> Any:
    """Every bit mask of width `bits` with at most `radius` bits set."""
    import numpy as np

    masks = [0]
    for r in range(1, radius + 1):
        masks += [sum(1 << i for i in c) for c in itertools.combinations(range(bits), r)]
    return np.asarray(masks, dtype=np.uint64)


def near_groups(hashes: Any, distance: int) -> Any:
    """Group label per hash (the smallest index in its group): hashes within `distance` bits
    are joined, transitively. Memory and time grow with the matches, not with n^2."""
    import numpy as np

    hashes = np.asarray(hashes, dtype=np.uint64)
    unique, inverse = np.unique(hashes, return_inverse=True)
    n = unique.size
    parent = np.arange(n)
    chunks, radius = _plan(distance, n)
    bits = HASH_BITS // chunks
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)
    flips = _flips(bits, radius)
    for chunk in range(chunks):
        keys = (unique >> np.uint64(chunk * bits)) & mask
        table = _Table(keys, bits)
        for flip in flips:
            left, right = _matches(keys ^ flip, table, unique, distance)
            if left.size:
                _union(parent, left, right)
    roots = _resolve(parent)
    # label = the smallest original index whose hash is in the group
    first = np.full(n, hashes.size, dtype=np.int64)
    np.minimum.at(first, roots[inverse], np.arange(hashes.size))
    return first[roots[inverse]]


class _Table:
    """Hash-table view of one chunk: for each key, where its hashes sit in `order`."""

    def __init__(self, keys: Any, bits: int) -> None:
        import numpy as np

        self.order = np.argsort(keys, kind="stable")
        self.sorted = keys[self.order]
        self.direct = bits <= 20  # small key space: a bucket array beats binary search
        if self.direct:
            counts = np.bincount(keys.astype(np.int64), minlength=1 << bits)
            self.ends = np.cumsum(counts)
            self.starts = self.ends - counts

    def ranges(self, queries: Any) -> tuple[Any, Any]:
        """[lo, hi) in `order` of the hashes whose chunk equals each query."""
        import numpy as np

        if self.direct:
            index = queries.astype(np.int64)
            return self.starts[index], self.ends[index]
        return (
            np.searchsorted(self.sorted, queries, "left"),
            np.searchsorted(self.sorted, queries, "right"),
        )


def _matches(queries: Any, table: _Table, unique: Any, distance: int) -> Any:
    """Pairs (i < j) of unique hashes whose chunk equals a query and whose full hash is close."""
    import numpy as np

    lo, hi = table.ranges(queries)
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    left = np.repeat(np.arange(queries.size), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    right = table.order[starts + np.arange(total)]
    keep = left < right
    left, right = left[keep], right[keep]
    close = popcount(unique[left] ^ unique[right]) <= distance
    return left[close], right[close]


def _union(parent: Any, left: Any, right: Any) -> None:
    """Join the groups of each (left, right) pair: link larger roots to smaller ones."""
    import numpy as np

    while True:
        roots = _resolve(parent)
        a, b = roots[left], roots[right]
        differ = a != b
        if not differ.any():
            return
        a, b = a[differ], b[differ]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        left, right = a, b


def _resolve(parent: Any) -> Any:
    """Point every node at its root (pointer jumping), in place; returns parent."""
    while True:
        grand = parent[parent]
        if (grand == parent).all():
            return parent
        parent[:] = grand
