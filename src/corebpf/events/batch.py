"""A batch of records read from a ring or perf buffer, as zero-copy views into the mapped buffer.

Contract: a batch's memoryviews and zero-copy arrays point into memory the producer reuses once
the consumer position moves past them, which happens when the batch is *released*: by
:meth:`Batch.release`, at the end of a ``with batch:`` block, or when the next batch is read from the
same buffer. After release the batch itself refuses access (:class:`BatchReleasedError`); views and
arrays already taken stay memory-safe (they keep the mapping alive, never dangle) but show whatever
the producer writes there next. Take ``batch.copy()``, ``batch.array(copy=True)`` or ``bytes(view)``
for anything kept past release.

Views are not tracked one by one: that would make the garbage collector walk every live record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import struct
from functools import lru_cache
from itertools import chain, compress
from operator import itemgetter
from typing import Any, Optional

import numpy as np

from ..errors import CoreBPFError
from ._common import release_view
from .typed import RecordType

_FIRST = itemgetter(0)

# (buffer, offset of the first record's data, stride between records, count, data length, keep-mask)
Segment = tuple[memoryview, int, int, int, int, Optional[np.ndarray]]


class BatchReleasedError(CoreBPFError, ValueError):
    """A released batch was used: its records may already be overwritten by the producer."""


class Batch(Sequence):  # type: ignore[type-arg]
    """Records of one buffer (one CPU for perf buffers), oldest first, as read-only memoryviews.

    ``len(batch)``, ``batch[i]`` and iteration give the records that carry data (discarded ring
    records are skipped and counted in :attr:`discarded`). :meth:`array` gives a numpy structured
    array, :meth:`values` decoded Python values (needs a record type), :meth:`copy` owned bytes.
    """

    __slots__ = ("source", "cpu", "discarded", "lost", "record_type", "_segments", "_count", "_hdr",
                 "_roots", "_on_release", "_released", "_starts")

    def __init__(self, source: Any, segments: list[Segment], count: int, discarded: int, lost: int,
                 on_release: Optional[Callable[[], None]], roots: list[memoryview],
                 record_type: Optional[RecordType] = None, cpu: Optional[int] = None, header_size: int = 8) -> None:
        """Made by the readers (:meth:`RingBuffer.read_batch`, :meth:`PerfBuffer.read_batches`)."""
        self.source = source
        """The :class:`RingBuffer` or :class:`PerfBuffer` this batch came from."""
        self.cpu = cpu
        """The CPU whose perf buffer this batch drained (None for ring buffers)."""
        self.discarded = discarded
        """Records the producer reserved and then discarded (ring buffers; skipped here)."""
        self.lost = lost
        """Samples the kernel reported lost in this batch (perf buffers' PERF_RECORD_LOST)."""
        self.record_type = record_type
        self._segments = segments
        self._count = count
        self._hdr = header_size
        self._roots = roots
        self._on_release = on_release
        self._released = False
        self._starts: Optional[list[int]] = None

    # ---- lifetime ----------------------------------------------------------------------------

    @property
    def released(self) -> bool:
        """True once the consumer position moved past these records."""
        return self._released

    def release(self) -> None:
        """Hand the records back to the producer (idempotent); views from this batch become invalid."""
        if self._released:
            return
        self._released = True
        for r in self._roots:
            release_view(r)
        self._roots = []
        self._segments = []
        cb, self._on_release = self._on_release, None
        if cb is not None:
            cb()

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _check(self) -> None:
        if self._released:
            raise BatchReleasedError("this batch was released (its records may be overwritten): read them "
                                     "before release(), or copy them with batch.copy() / batch.array(copy=True)")

    # ---- records as memoryviews ------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[memoryview]:
        self._check()
        if len(self._segments) == 1:
            return segment_views(self._segments[0])[1]
        return chain.from_iterable(segment_views(seg)[1] for seg in self._segments)

    def __getitem__(self, index: Any) -> Any:
        """``batch[i]``: record ``i`` as a memoryview; ``batch[i:j]``: a list of them; ``batch["field"]``:
        that field of every record (a column of :meth:`array`)."""
        self._check()
        if isinstance(index, str):
            return self.array()[index]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"batch index {index} out of range ({self._count} records)")
        if self._starts is None:
            starts, total = [], 0
            for seg in self._segments:
                starts.append(total)
                total += seg[3] if seg[5] is None else int(np.count_nonzero(seg[5]))
            self._starts = starts
        seg_i = _bisect_right(self._starts, index) - 1
        buf, off, stride, count, length, keep = self._segments[seg_i]
        i = index - self._starts[seg_i]
        if keep is not None:
            i = int(np.flatnonzero(keep)[i])
        p = off + i * stride
        return buf[p:p + length]

    def iter_bytes(self) -> Iterator[bytes]:
        """Every record as owned ``bytes`` (a copy each, valid after release; faster than views to make)."""
        self._check()
        hdr = self._hdr
        return chain.from_iterable(map(_FIRST, segment_bytes(seg, hdr)[1]) for seg in self._segments)

    def copy(self) -> list[bytes]:
        """Every record as owned ``bytes`` (valid after release)."""
        return list(self.iter_bytes())

    @property
    def nbytes(self) -> int:
        """Bytes of record data in this batch (discarded records excluded)."""
        total = 0
        for _, _, _, count, length, keep in self._segments:
            total += length * (count if keep is None else int(np.count_nonzero(keep)))
        return total

    # ---- typed views ---------------------------------------------------------------------------

    def array(self, dtype: Any = None, *, copy: bool = False) -> np.ndarray:
        """The records as a numpy structured array of ``dtype`` (default: the buffer's record type).

        Zero-copy (a strided, read-only view into the mapped buffer) when the records are contiguous
        and all the same size; otherwise one copy. Each record must hold at least ``dtype.itemsize``
        bytes (perf samples carry padding after the data, which is ignored).
        """
        self._check()
        dt = self._dtype(dtype)
        parts: list[np.ndarray] = []
        for buf, off, stride, count, length, keep in self._segments:
            if length < dt.itemsize:
                raise ValueError(f"records of {length} bytes are too short for {dt} ({dt.itemsize} bytes)")
            arr = np.ndarray((count,), dtype=dt, buffer=buf, offset=off, strides=(stride,))
            parts.append(arr if keep is None else arr[keep])
        if not parts:
            return np.empty(0, dtype=dt)
        if len(parts) == 1:
            only_view = self._segments[0][5] is None
            return parts[0].copy() if copy and only_view else parts[0]
        return np.concatenate(parts)

    def values(self) -> list[Any]:
        """Every record decoded through the record type (BTF or dtype) into Python values."""
        rt = self.record_type
        if rt is None:
            raise ValueError("no record type: give record_type= to the reader (a BTF type or numpy dtype)")
        self._check()
        out = []
        for buf, off, stride, count, length, keep in self._segments:
            idx = range(count) if keep is None else np.flatnonzero(keep).tolist()
            for i in idx:
                v = buf[off + i * stride:off + i * stride + length]
                try:
                    out.append(rt.decode(v))
                finally:
                    v.release()
        return out

    def _dtype(self, dtype: Any) -> np.dtype:
        if dtype is not None:
            return np.dtype(dtype)
        if self.record_type is not None:
            return self.record_type.dtype
        raise ValueError("no dtype: pass one, or give record_type= to the reader")

    def __repr__(self) -> str:
        state = "released" if self._released else f"{self._count} records"
        where = f" cpu={self.cpu}" if self.cpu is not None else ""
        return f"<Batch{where} {state} discarded={self.discarded} lost={self.lost}>"


def seg_kept(seg: Segment) -> int:
    """Records of a segment that carry data (discarded ones excluded)."""
    keep = seg[5]
    return seg[3] if keep is None else int(np.count_nonzero(keep))


def segment_views(seg: Segment) -> tuple[Iterator[int], Iterator[memoryview]]:
    """(iterator over record start offsets, iterator over record views) of one segment.

    The loop runs in C (``map`` over ``slice`` over two ranges); ``operator.length_hint`` of the first
    iterator says how many records the second has not produced yet.
    """
    buf, off, stride, count, length, keep = seg
    if keep is None:
        starts: Iterator[int] = iter(range(off, off + stride * count, stride))
        ends: Iterator[int] = iter(range(off + length, off + length + stride * count, stride))
    else:
        first = np.flatnonzero(keep) * stride + off
        starts, ends = iter(first.tolist()), iter((first + length).tolist())
    return starts, map(buf.__getitem__, map(slice, starts, ends))


@lru_cache(maxsize=64)
def _record_struct(hdr: int, length: int, stride: int) -> struct.Struct:
    return struct.Struct(f"{hdr}x{length}s{stride - hdr - length}x")


def segment_bytes(seg: Segment, hdr: int) -> tuple[Iterator[Any], Iterator[tuple[bytes]]]:
    """(raw iterator, iterator of 1-tuples holding each kept record as ``bytes``) of one segment.

    ``struct.iter_unpack`` copies the records out in C, with no slice object per record: the fastest
    way CPython has to turn a run of equal records into Python objects. ``length_hint`` of the raw
    iterator says how many records (discarded ones included) it has not produced yet.
    """
    buf, off, stride, count, length, keep = seg
    start = off - hdr
    raw = _record_struct(hdr, length, stride).iter_unpack(buf[start:start + stride * count])
    if keep is None:
        return raw, raw
    return raw, compress(raw, keep.tolist())


def _bisect_right(a: list[int], x: int) -> int:
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


__all__ = ["Batch", "BatchReleasedError", "Segment"]
