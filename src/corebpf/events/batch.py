"""A batch of records read from a ring or perf buffer, as zero-copy views into the mapped buffer.

Contract: a batch's memoryviews and zero-copy arrays point into memory the kernel reuses once the
consumer position moves past them, which happens when the batch is *released*: by
:meth:`Batch.release`, at the end of a ``with batch:`` block, or when the next batch is read from the
same buffer. Release invalidates every memoryview the batch handed out (using one afterwards raises
``ValueError``); numpy arrays cannot be invalidated, so take ``batch.array(copy=True)`` (or
``bytes(view)``) for anything kept longer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Optional

import numpy as np

from ..errors import CoreBPFError
from ._common import release_view
from .typed import RecordType

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

    __slots__ = ("source", "cpu", "discarded", "lost", "record_type", "_segments", "_count", "_views",
                 "_roots", "_on_release", "_released", "_starts")

    def __init__(self, source: Any, segments: list[Segment], count: int, discarded: int, lost: int,
                 on_release: Optional[Callable[[], None]], roots: list[memoryview],
                 record_type: Optional[RecordType] = None, cpu: Optional[int] = None) -> None:
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
        self._views: list[memoryview] = []
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
        for v in self._views:
            release_view(v)
        self._views = []
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
        views = self._views
        for buf, off, stride, count, length, keep in self._segments:
            if keep is None:
                for p in range(off, off + stride * count, stride):
                    v = buf[p:p + length]
                    views.append(v)
                    yield v
            else:
                for i in np.flatnonzero(keep).tolist():
                    p = off + i * stride
                    v = buf[p:p + length]
                    views.append(v)
                    yield v

    def __getitem__(self, index: Any) -> Any:
        self._check()
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
        v = buf[p:p + length]
        self._views.append(v)
        return v

    def copy(self) -> list[bytes]:
        """Every record as owned ``bytes`` (valid after release)."""
        self._check()
        out: list[bytes] = []
        for buf, off, stride, count, length, keep in self._segments:
            idx = range(count) if keep is None else np.flatnonzero(keep).tolist()
            out.extend(bytes(buf[off + i * stride:off + i * stride + length]) for i in idx)
        return out

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
