"""Perceptual hashes and the nearest near-duplicate of each, by multi-index hashing (not n^2)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
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
    """Bit counts of a uint64 array (uint8, as np.bitwise_count gives them)."""
    import numpy as np

    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    octets = np.ascontiguousarray(x, dtype=np.uint64).view(np.uint8).reshape(*np.shape(x), 8)
    return _octet_bits()[octets].sum(axis=-1, dtype=np.uint8)


@cache
def _octet_bits() -> Any:
    """The bit count of each byte value 0..255, for numpy 1.x, which has no bitwise_count."""
    import numpy as np

    return np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1)


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


def nearest_lower(hashes: Any, rankings: Sequence[Any], distance: int) -> list[tuple[Any, Any]]:
    """For each ranking of the hashes, each hash's nearest hash of a lower rank at most
    `distance` bits away: (index, bits) arrays, index -1 where there is none. Ties go to the
    lower rank, then the lower index.

    Ranks that are the positions (0, 1, 2, ...) give each hash its nearest earlier one. Only
    pairs of hashes that close are ever compared, once for all the rankings: time and memory
    grow with them, not with n^2.
    """
    import numpy as np

    hashes = np.asarray(hashes, dtype=np.uint64)
    unique, inverse = np.unique(hashes, return_inverse=True)
    lower = [_Lower(np.asarray(r, dtype=np.int64), inverse.ravel(), unique.size) for r in rankings]
    for left, right, apart in _close_pairs(unique, distance):
        for each in lower:
            each.update(left, right, apart)
    return [each.result() for each in lower]


class _Lower:
    """nearest_lower for one ranking, pair batch by pair batch. A candidate is the key
    bits * size + its place in (rank, index) order, so the smallest key is the nearest."""

    def __init__(self, ranks: Any, inverse: Any, distinct: int) -> None:
        import numpy as np

        size = self.size = ranks.size
        self.ranks, self.inverse = ranks, inverse
        self.order = np.lexsort((np.arange(size), ranks))
        place = np.empty(size, dtype=np.int64)
        place[self.order] = np.arange(size)
        self.head = np.full(distinct, size, dtype=np.int64)  # place of each distinct hash's first
        np.minimum.at(self.head, inverse, place)
        self.head_rank = ranks[self.order[self.head]]
        self.none = (HASH_BITS + 1) * size
        # best[u]: the nearest other hash whose first ranks below u's first (what u's first sees)
        self.best = np.full(distinct, self.none, dtype=np.int64)

    def update(self, left: Any, right: Any, apart: Any) -> None:
        """Take in a batch of close pairs of distinct hashes."""
        import numpy as np

        for a, b in ((left, right), (right, left)):
            lower = self.head_rank[b] < self.head_rank[a]
            np.minimum.at(self.best, a[lower], apart[lower] * self.size + self.head[b[lower]])

    def result(self) -> tuple[Any, Any]:
        """(index, bits) of each hash's nearest of a lower rank; index -1 where none."""
        import numpy as np

        u = self.inverse
        # an image ranked above the first of its own hash matches that first, 0 bits apart
        key = np.where(self.head_rank[u] < self.ranks, self.head[u], self.best[u])
        found, bits = np.full(self.size, -1, dtype=np.int64), np.zeros(self.size, dtype=np.int64)
        has = key < self.none
        found[has] = self.order[key[has] % self.size]
        bits[has] = key[has] // self.size
        return found, bits


def _close_pairs(unique: Any, distance: int) -> Iterator[tuple[Any, Any, Any]]:
    """Batches of pairs (i < j) of the distinct `unique` hashes at most `distance` bits apart,
    with their distance; a pair may come in more than one batch."""
    import numpy as np

    if unique.size < 2:
        return  # nothing to pair (and _plan, costing nothing, would pick every 6-bit flip)
    chunks, radius = _plan(distance, unique.size)
    bits = HASH_BITS // chunks
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)
    flips = _flips(bits, radius)
    for chunk in range(chunks):
        keys = (unique >> np.uint64(chunk * bits)) & mask
        table = _Table(keys, bits)
        for flip in flips:
            left, right, apart = _matches(keys ^ flip, table, unique, distance)
            if left.size:
                yield left, right, apart


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
    """Pairs (i < j) of unique hashes whose chunk equals a query and whose full hash is close,
    with their distance."""
    import numpy as np

    lo, hi = table.ranges(queries)
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    left = np.repeat(np.arange(queries.size), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    right = table.order[starts + np.arange(total)]
    keep = left < right
    left, right = left[keep], right[keep]
    apart = popcount(unique[left] ^ unique[right]).astype(np.int64)
    close = apart <= distance
    return left[close], right[close], apart[close]
