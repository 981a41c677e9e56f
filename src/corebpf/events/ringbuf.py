"""``RingBuffer``: read a BPF ring buffer map (``BPF_MAP_TYPE_RINGBUF``) through its shared memory.

Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position, which user space owns and maps
read-write; page 1 holds the producer position, followed by the data area, both mapped read-only.
The kernel maps the data pages twice in a row, so a record that runs past the end of the ring is
still contiguous in our mapping: a reader never copies to undo a wrap-around.

Each record starts with an 8-byte header: a 32-bit length whose top bits are BUSY (reserved, not yet
committed) and DISCARD (committed as dropped), and a page offset the kernel uses. Records are
8-byte aligned. A consumer reads the producer position, walks the headers up to the first BUSY one,
and publishes the new consumer position after the records are processed. That publication frees
space for the producer and re-arms the kernel's wakeups (it wakes the consumer only when a record
is committed at the consumer position).

Memory ordering: the kernel writes a header (BUSY) before it publishes the producer position, and
clears BUSY with a release store. We read the producer position, then headers, then data, then
store the consumer position, each as a plain aligned load/store from the mapping, separated by
whole interpreter steps. On x86-64 (TSO) loads are not reordered with loads nor stores with
earlier loads, so these plain accesses have the acquire/release semantics the protocol needs. On
arm64 a plain load is formally weaker than an acquire: there we rely on the BUSY check and on the
many instructions between the accesses (CPython offers no fence instruction without a C extension).
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import partial
from itertools import starmap
from operator import length_hint
from typing import Any, Optional, Union

import numpy as np

from ..maps import Map, MapType
from ._common import PAGE_SIZE, PolledSource, drop_mmap, open_map, release_view
from .batch import Batch, Segment, seg_kept, segment_bytes
from .typed import RecordType, RecordTypeLike, as_record_type
from .._sys.closing import Closing

BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8
BPF_RB_NO_WAKEUP = 1
"""Flag for bpf_ringbuf_output/submit/discard: do not wake the consumer (it polls with a timeout)."""
BPF_RB_FORCE_WAKEUP = 2
"""Flag for bpf_ringbuf_output/submit/discard: wake the consumer even if it is behind."""

_LEN_AND_BUSY = ~BPF_RINGBUF_DISCARD_BIT & 0xFFFFFFFF
_LEN_MASK = ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT) & 0xFFFFFFFF
_FAST_MIN = 8  # below this many candidate records, numpy's fixed cost exceeds a Python loop
_CHUNK = 1 << 16  # headers checked per numpy pass: the temporaries stay in cache

_drain = partial(deque, maxlen=0)  # run an iterator to its end in C (the callbacks are the only Python)

Callback = Callable[[bytes], Any]
DropCounter = Union[Callable[[], int], Map, tuple[Map, Any]]


class RingBuffer(PolledSource, Closing):
    """A consumer of one BPF ring buffer map.

    ``ring = RingBuffer(map, callback=None, record_type=None, drop_counter=None)``; ``map`` is a
    :class:`~corebpf.Map` of type ``ringbuf``, a map fd or a pin path (the reader keeps its own fd).

    Reading, all non-blocking unless they say ``poll``:

    * :meth:`read_batch` -> :class:`~corebpf.events.batch.Batch` of zero-copy memoryviews / numpy array,
      released by ``batch.release()``, ``with batch:``, or the next read;
    * :meth:`consume` calls ``callback(record)`` per record (``bytes``);
    * :meth:`poll` waits (epoll) up to ``timeout`` seconds, then consumes; ``async for value in ring``
      iterates from asyncio.

    Several rings (and perf buffers) share one wait with :class:`~corebpf.events.poller.Poller`.
    A ring has one consumer: use a reader from one thread at a time (two readers of the same ring
    would each move the shared consumer position under the other).
    """

    def __init__(self, map: Any, callback: Optional[Callback] = None, *,
                 record_type: "RecordTypeLike | None" = None, drop_counter: Optional[DropCounter] = None) -> None:
        self._map: Optional[Map] = None
        self._cons_mm: Optional[mmap.mmap] = None
        self._prod_mm: Optional[mmap.mmap] = None
        self._init_polling()
        self._batch: Optional[Batch] = None
        m = open_map(map, MapType.RINGBUF, "RingBuffer")
        try:
            self._setup(m)
        except BaseException:
            self._release_mappings()
            m.close()
            raise
        self._map = m
        self.callback = callback
        """Called by :meth:`consume` / :meth:`poll` (and a :class:`Poller`) with each record's bytes."""
        self.record_type: Optional[RecordType] = as_record_type(record_type)
        self.drop_counter = drop_counter
        self.received = 0
        """Records handed out so far (batches count when released)."""
        self.discarded = 0
        """Records seen with the DISCARD bit (the producer reserved, then discarded them)."""

    def _setup(self, m: Map) -> None:
        size = m.max_entries
        if size <= 0 or size & (size - 1) or size % PAGE_SIZE:
            raise ValueError(f"ring buffer size {size} is not a power-of-2 multiple of the page size")
        self.size: int = size
        """Bytes of the data area (the map's max_entries)."""
        self._mask = size - 1
        # The consumer page is ours to write; producer page + twice the data are read-only.
        self._cons_mm = m.mmap(PAGE_SIZE, 0, writable=True)
        self._prod_mm = m.mmap(PAGE_SIZE + 2 * size, PAGE_SIZE, writable=False)
        self._cons_q = memoryview(self._cons_mm).cast("Q")
        self._prod_q = memoryview(self._prod_mm).cast("Q")
        self._words = memoryview(self._prod_mm).cast("I")
        self._data = memoryview(self._prod_mm)
        self._np_words = np.frombuffer(self._prod_mm, dtype=np.uint32)

    # ---- lifetime ----------------------------------------------------------------------------

    @property
    def map(self) -> Map:
        """The ring buffer map (this reader's own fd)."""
        if self._map is None:
            raise ValueError("the ring buffer reader is closed")
        return self._map

    def fileno(self) -> int:
        """The map fd, readable (EPOLLIN) when the kernel woke consumers for new data."""
        return self.map.fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._map is None

    def close(self) -> None:
        """Release the outstanding batch, unmap the ring, close the poller and the map fd (idempotent)."""
        if self._map is None:
            return
        if self._batch is not None:
            self._batch.release()
            self._batch = None
        self._detach_pollers()
        self._release_mappings()
        m, self._map = self._map, None
        m.close()

    def _release_mappings(self) -> None:
        for name in ("_cons_q", "_prod_q", "_words", "_data"):
            release_view(getattr(self, name, None))
            setattr(self, name, None)
        self._np_words = None
        drop_mmap(self, "_cons_mm")
        drop_mmap(self, "_prod_mm")

    def __repr__(self) -> str:
        if self._map is None:
            return "<RingBuffer closed>"
        return f"<RingBuffer {self._map.name!r} size={self.size} pending={self.pending} received={self.received}>"

    # ---- positions -----------------------------------------------------------------------------

    @property
    def consumer_pos(self) -> int:
        """Bytes consumed since the ring was created (monotonic)."""
        return self._cons_q[0]

    @property
    def producer_pos(self) -> int:
        """Bytes reserved by producers since the ring was created (monotonic)."""
        return self._prod_q[0]

    @property
    def pending(self) -> int:
        """Bytes between the consumer and producer positions (records not yet consumed)."""
        return self._prod_q[0] - self._cons_q[0]

    def _has_data(self) -> bool:
        return self._prod_q[0] != self._cons_q[0]

    @property
    def dropped(self) -> Optional[int]:
        """Records the producer failed to write, from ``drop_counter`` (None without one).

        The kernel does not count ring buffer drops: a program that wants them counted increments a
        map entry when ``bpf_ringbuf_reserve``/``output`` fails. ``drop_counter`` is that map (key 0),
        a ``(map, key)`` pair (per-CPU values are summed), or any callable returning the count.
        """
        dc = self.drop_counter
        if dc is None:
            return None
        if callable(dc) and not isinstance(dc, Map):
            return int(dc())
        m, key = (dc, 0) if isinstance(dc, Map) else dc
        value = m.lookup(key)
        if value is None:
            return 0
        if isinstance(value, list):
            return sum(int.from_bytes(v[:8], "little") for v in value)
        return int.from_bytes(value[:8], "little")

    # ---- scanning ------------------------------------------------------------------------------

    def _scan(self, buf: memoryview, limit: Optional[int]) -> tuple[list[Segment], int, int, int]:
        """Walk committed records from the consumer position: (segments, end position, records, discarded).

        Runs of records of one length are verified with one vectorised pass over their headers (a
        strided numpy view of the mapping) instead of a Python step per record.
        """
        cons = self._cons_q[0]
        prod = self._prod_q[0]
        words, npw, mask = self._words, self._np_words, self._mask
        segments: list[Segment] = []
        count = discarded = 0
        pos = cons
        left = limit if limit is not None else 1 << 62
        while pos < prod and left > 0:
            off = PAGE_SIZE + (pos & mask)
            w = words[off >> 2]
            if w & BPF_RINGBUF_BUSY_BIT:
                break  # not committed yet: later records wait for it (the kernel commits in any order)
            length = w & _LEN_MASK
            stride = (length + BPF_RINGBUF_HDR_SZ + 7) & ~7
            avail = (prod - pos) // stride
            if avail == 0:
                raise RuntimeError(f"corrupt ring buffer: a {length}-byte record at position {pos} runs past "
                                   f"the producer position {prod}")
            if avail > left:
                avail = left
            keep: Optional[np.ndarray] = None
            if avail >= _FAST_MIN:
                k, keep = _check_run(npw, off >> 2, stride >> 2, avail, length)
                nd = 0 if keep is None else k - int(np.count_nonzero(keep))
            else:
                k, nd, flags = 0, 0, []
                p = off
                while k < avail:
                    w = words[p >> 2]
                    if w & _LEN_AND_BUSY != length:
                        break
                    flags.append(w & BPF_RINGBUF_DISCARD_BIT)
                    k += 1
                    p += stride
                if any(flags):
                    keep = np.array([not f for f in flags], dtype=bool)
                    nd = k - int(np.count_nonzero(keep))
            segments.append((buf, off + BPF_RINGBUF_HDR_SZ, stride, k, length, keep))
            count += k - nd
            discarded += nd
            pos += k * stride
            left -= k
        return segments, pos, count, discarded

    def _commit(self, pos: int) -> None:
        # a plain 8-byte store into the shared page: the kernel reads it with smp_load_acquire
        self._cons_q[0] = pos

    # ---- batch API -----------------------------------------------------------------------------

    def read_batch(self, max_records: Optional[int] = None) -> Batch:
        """The committed records not yet consumed (up to ``max_records``), without waiting or copying.

        The previous batch of this reader is released first. The consumer position moves when this
        batch is released (``batch.release()``, ``with``, or the next read).
        """
        if self._batch is not None:
            self._batch.release()
            self._batch = None
        if self._map is None:
            raise ValueError("the ring buffer reader is closed")
        root = self._data[:]  # the batch's own view: released with the batch
        segments, end, count, discarded = self._scan(root, max_records)

        def on_release() -> None:
            if self._cons_q is not None:
                self._commit(end)
            self.received += count
            self.discarded += discarded

        batch = Batch(self, segments, count, discarded, 0, on_release, [root], self.record_type)
        self._batch = batch
        return batch

    def read_batches(self, max_records: Optional[int] = None) -> list[Batch]:
        """``[read_batch()]`` when there is data, else ``[]`` (the same shape as perf buffers)."""
        batch = self.read_batch(max_records)
        if batch or batch.discarded:
            return [batch]
        batch.release()
        return []

    def _release_batches(self) -> None:
        if self._batch is not None:
            self._batch.release()
            self._batch = None

    # ---- callback API --------------------------------------------------------------------------

    def consume(self, callback: Optional[Callback] = None, max_records: Optional[int] = None) -> int:
        """Call ``callback(record)`` (default: the reader's) for each committed record; returns how many.

        ``record`` is a ``bytes`` copy (cheaper to make in CPython than a view, and valid after the
        call). Drains until the ring is empty (records produced meanwhile included) or ``max_records``.
        If the callback raises, the records before it and the one that raised count as consumed, and
        the exception propagates.
        """
        cb = callback or self.callback
        if cb is None:
            raise ValueError("consume() needs a callback (or give callback= to RingBuffer)")
        self._release_batches()
        data = self._data
        if data is None:
            raise ValueError("the ring buffer reader is closed")
        total = 0
        while max_records is None or total < max_records:
            start = self._cons_q[0]
            segments, end, count, discarded = self._scan(data, None if max_records is None else max_records - total)
            if not segments:
                break
            pos = start
            for seg in segments:
                raw, records = segment_bytes(seg, BPF_RINGBUF_HDR_SZ)
                try:
                    _drain(starmap(cb, records))
                except BaseException:
                    taken = seg[3] - length_hint(raw)
                    self._commit(pos + taken * seg[2])
                    delivered = _delivered(segments, seg, taken)
                    self.received += delivered
                    self.discarded += _records_before(segments, seg, taken) - delivered
                    raise
                pos += seg[2] * seg[3]
            self._commit(end)
            self.received += count
            self.discarded += discarded
            total += count
        return total

    # ---- waiting -------------------------------------------------------------------------------

    def poll(self, timeout: Optional[float] = None, callback: Optional[Callback] = None) -> int:
        """Wait up to ``timeout`` seconds (None: until woken) for data, then :meth:`consume` it.

        Data already there is consumed without waiting; after a timeout the ring is drained anyway,
        so records written with ``BPF_RB_NO_WAKEUP`` arrive at the latest one timeout later.
        """
        if self._has_data():
            return self.consume(callback)
        self._own_poller().wait(timeout)
        return self.consume(callback) if self._has_data() else 0

    def poll_batch(self, timeout: Optional[float] = None, max_records: Optional[int] = None) -> Batch:
        """Wait like :meth:`poll`, then return :meth:`read_batch`."""
        if not self._has_data():
            self._own_poller().wait(timeout)
        return self.read_batch(max_records)

    def _wait_fds(self) -> list[int]:
        return [self.fileno()]

    def events(self, *, copy: bool = True, interval: float = 0.25) -> AsyncIterator[Any]:
        """``async for`` over records: decoded values with a record type, else ``bytes``.

        Wakes on the ring's fd through the running asyncio loop; drains at least every ``interval``
        seconds for producers that write with ``BPF_RB_NO_WAKEUP``.
        """
        return self._own_poller().events(copy=copy, interval=interval, with_source=False)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.events()


def _delivered(segments: list[Segment], failed: Segment, taken: int) -> int:
    """Records handed to the callback: every kept record of the segments before ``failed``, plus the
    kept ones among the first ``taken`` records of ``failed``."""
    n = 0
    for seg in segments:
        if seg is failed:
            keep = seg[5]
            return n + (taken if keep is None else int(np.count_nonzero(keep[:taken])))
        n += seg_kept(seg)
    return n


def _records_before(segments: list[Segment], failed: Segment, taken: int) -> int:
    """Records (discarded ones included) before ``failed`` plus its first ``taken``."""
    n = 0
    for seg in segments:
        if seg is failed:
            return n + taken
        n += seg[3]
    return n


def _check_run(npw: np.ndarray, w0: int, step: int, avail: int, length: int) -> tuple[int, Optional[np.ndarray]]:
    """How many of the ``avail`` headers from word ``w0`` (every ``step`` words) are committed records of
    ``length`` bytes, and which of them to keep (None: all; else a mask that is False for discarded ones).

    The common case -- every header exactly ``length`` (not busy, not discarded) -- costs one compare
    per header in numpy; the search for the first busy/other-size header runs only when it fails.
    """
    k = 0
    keep_parts: Optional[list[np.ndarray]] = None
    while k < avail:
        n = min(_CHUNK, avail - k)
        h = npw[w0 + k * step:w0 + (k + n) * step:step]
        if (h == length).all():
            if keep_parts is not None:
                keep_parts.append(np.ones(n, dtype=bool))
            k += n
            continue
        same = (h & _LEN_AND_BUSY) == length
        m = n if same.all() else int(same.argmin())
        disc = (h[:m] & BPF_RINGBUF_DISCARD_BIT) != 0
        if keep_parts is None and disc.any():
            keep_parts = [np.ones(k, dtype=bool)]
        if keep_parts is not None:
            keep_parts.append(~disc)
        k += m
        if m < n:
            break
    keep = None if keep_parts is None else np.concatenate(keep_parts)
    return k, keep


__all__ = ["RingBuffer", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_RINGBUF_BUSY_BIT",
           "BPF_RINGBUF_DISCARD_BIT", "BPF_RINGBUF_HDR_SZ"]
