"""``PerfBuffer``: read what programs send with ``bpf_perf_event_output`` into a perf event array.

One software perf event (``PERF_COUNT_SW_BPF_OUTPUT``, sample type ``PERF_SAMPLE_RAW``) per online
CPU, each with its own mmapped ring: a metadata page (``struct perf_event_mmap_page``: the kernel's
``data_head`` at byte 1024, our ``data_tail`` at 1032) and ``pages`` data pages. Each event's fd is
stored in the map at its CPU's index, which is where ``BPF_F_CURRENT_CPU`` sends a program's output.

Records start with ``struct perf_event_header`` (type, misc, size). ``PERF_RECORD_SAMPLE`` carries a
32-bit size and the raw bytes (padded so the record is 8-byte aligned); ``PERF_RECORD_LOST`` carries
the number of samples the kernel dropped because the ring was full. The data area is mapped once,
so a record can wrap around its end: such a batch is copied once into a contiguous buffer.
"""

from __future__ import annotations

import fcntl
import mmap
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from functools import partial
from itertools import starmap
from operator import length_hint
from typing import Any, Optional

import numpy as np

from .._sys import ops
from .._sys._generated import PerfEventAttr, PerfSwId, PerfType
from .._sys.fd import FD
from .._sys.syscall import perf_event_open
from ..maps import Map, MapType
from ._common import PAGE_SIZE, PolledSource, drop_mmap, open_map, online_cpus, release_view
from .batch import Batch, Segment, segment_bytes
from .typed import RecordType, RecordTypeLike, as_record_type
from .._sys.closing import Closing

PERF_SAMPLE_RAW = 1 << 10
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
_HEAD_Q, _TAIL_Q = 1024 // 8, 1032 // 8  # data_head / data_tail in struct perf_event_mmap_page
_SAMPLE_HDR = 12  # perf_event_header + u32 raw size
_TYPE_SIZE_MASK = 0xFFFF0000FFFFFFFF  # header as u64, without ``misc`` (it varies with the CPU mode)
_FAST_MIN = 8
_hdr = struct.Struct("<IHH")
_u32 = struct.Struct("<I")
_u64 = struct.Struct("<Q")
_drain = partial(deque, maxlen=0)

Callback = Callable[[bytes], Any]
LostCallback = Callable[[int, int], Any]


class _CpuRing:
    """One CPU's perf event, its mapping, and the views we read it through."""

    __slots__ = ("cpu", "fd", "mm", "q", "data", "size")

    def __init__(self, cpu: int, fd: FD, mm: mmap.mmap, size: int) -> None:
        self.cpu = cpu
        self.fd = fd
        self.mm: Optional[mmap.mmap] = mm
        self.q: Optional[memoryview] = memoryview(mm).cast("Q")
        self.data: Optional[memoryview] = memoryview(mm)
        self.size = size

    def close(self) -> None:
        release_view(self.q)
        release_view(self.data)
        self.q = self.data = None
        drop_mmap(self, "mm")
        self.fd.close()


class PerfBuffer(PolledSource, Closing):
    """A reader of one ``perf_event_array`` map: per-CPU rings, lost-sample counts.

    ``PerfBuffer(map, pages=8, callback=None, lost_callback=None, record_type=None, wakeup_events=1)``.
    ``pages`` (a power of 2) is each CPU's ring size in pages. The kernel wakes the reader every
    ``wakeup_events`` samples (or, with ``watermark=`` bytes, when that much is pending); :meth:`poll`
    drains after its timeout whatever the wakeups said.

    Same reading APIs as :class:`RingBuffer`: :meth:`read_batches` (one zero-copy :class:`Batch` per
    CPU with data), :meth:`consume` / :meth:`poll` with a per-record callback, ``async for``. Lost
    samples: :attr:`lost` (total), :attr:`lost_per_cpu`, and ``lost_callback(cpu, count)``.
    Use a reader from one thread at a time.
    """

    def __init__(self, map: Any, pages: int = 8, callback: Optional[Callback] = None, *,
                 lost_callback: Optional[LostCallback] = None, record_type: "RecordTypeLike | None" = None,
                 wakeup_events: int = 1, watermark: int = 0, cpus: Optional[list[int]] = None) -> None:
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of 2, got {pages}")
        self._map: Optional[Map] = None
        self._rings: list[_CpuRing] = []
        self._batches: list[Batch] = []
        self._init_polling()
        self.callback = callback
        """Called by :meth:`consume` / :meth:`poll` (and a :class:`Poller`) with each sample's bytes."""
        self.lost_callback = lost_callback
        """Called with (cpu, count) for each PERF_RECORD_LOST."""
        self.record_type: Optional[RecordType] = as_record_type(record_type)
        self.lost_per_cpu: dict[int, int] = {}
        """Samples the kernel reported lost, by CPU."""
        self.received = 0
        """Samples handed out so far (batches count when released)."""
        self.pages = pages
        m = open_map(map, MapType.PERF_EVENT_ARRAY, "PerfBuffer")
        self._map = m
        try:
            for cpu in (cpus if cpus is not None else online_cpus()):
                if cpu >= m.max_entries:
                    continue  # like libbpf: the map decides how many CPUs can have a buffer
                self._rings.append(self._open_cpu(m, cpu, pages, wakeup_events, watermark))
                self.lost_per_cpu[cpu] = 0
            if not self._rings:
                raise ValueError(f"perf event array {m.name!r} has {m.max_entries} slots: no online CPU fits")
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open_cpu(m: Map, cpu: int, pages: int, wakeup_events: int, watermark: int) -> _CpuRing:
        attr = PerfEventAttr(type=PerfType.SOFTWARE, config=PerfSwId.BPF_OUTPUT, sample_type=PERF_SAMPLE_RAW)
        attr.sample_period = 1
        if watermark:
            attr.watermark = 1
            attr.wakeup_watermark = watermark
        else:
            attr.wakeup_events = max(1, wakeup_events)
        fd = FD(perf_event_open(attr, -1, cpu))
        try:
            mm = mmap.mmap(fd.fileno(), PAGE_SIZE * (1 + pages), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError:
            fd.close()
            raise
        ring = _CpuRing(cpu, fd, mm, PAGE_SIZE * pages)
        try:
            fcntl.ioctl(fd.fileno(), PERF_EVENT_IOC_ENABLE, 0)
            m[cpu] = fd.fileno()
        except BaseException:
            ring.close()
            raise
        return ring

    # ---- lifetime ----------------------------------------------------------------------------

    @property
    def map(self) -> Map:
        """The perf event array (this reader's own fd)."""
        if self._map is None:
            raise ValueError("the perf buffer reader is closed")
        return self._map

    @property
    def cpus(self) -> list[int]:
        """The CPUs with a buffer."""
        return [r.cpu for r in self._rings]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._map is None

    def close(self) -> None:
        """Release batches, remove our events from the map, unmap and close everything (idempotent)."""
        if self._map is None:
            return
        self._release_batches()
        self._detach_pollers()
        for r in self._rings:
            try:
                ops.map_delete_elem(self._map.fileno(), r.cpu.to_bytes(4, "little"))
            except Exception:
                pass  # already replaced or removed by someone else
            r.close()
        self._rings = []
        m, self._map = self._map, None
        m.close()

    def __repr__(self) -> str:
        if self._map is None:
            return "<PerfBuffer closed>"
        return f"<PerfBuffer {self._map.name!r} cpus={self.cpus} pages={self.pages} lost={self.lost}>"

    @property
    def lost(self) -> int:
        """Samples the kernel reported lost on all CPUs (PERF_RECORD_LOST), so far."""
        return sum(self.lost_per_cpu.values())

    def _has_data(self) -> bool:
        for r in self._rings:
            q = r.q
            if q is not None and q[_HEAD_Q] != q[_TAIL_Q]:
                return True
        return False

    def _wait_fds(self) -> list[int]:
        return [r.fd.fileno() for r in self._rings]

    def _add_lost(self, cpu: int, count: int) -> None:
        self.lost_per_cpu[cpu] = self.lost_per_cpu.get(cpu, 0) + count
        if self.lost_callback is not None:
            self.lost_callback(cpu, count)

    # ---- batch API -----------------------------------------------------------------------------

    def _release_batches(self) -> None:
        batches, self._batches = self._batches, []
        for b in batches:
            b.release()

    def read_batches(self) -> list[Batch]:
        """One :class:`Batch` per CPU holding samples (previous batches are released first).

        Zero-copy unless a CPU's pending records wrap around the end of its ring (then one copy).
        ``batch.lost`` counts samples lost on that CPU; the totals update when the batch is released.
        """
        self._release_batches()
        if self._map is None:
            raise ValueError("the perf buffer reader is closed")
        out: list[Batch] = []
        for r in self._rings:
            batch = self._read_cpu(r)
            if batch is not None:
                out.append(batch)
        self._batches = list(out)
        return out

    @staticmethod
    def _pending(r: _CpuRing) -> Optional[tuple[memoryview, int, int, int]]:
        """(buffer, offset of the first pending record in it, data_head, data_tail), or None if empty.

        Zero-copy unless the pending records wrap around the end of the ring; then one copy."""
        q, data = r.q, r.data
        if q is None or data is None:
            raise ValueError("the perf buffer reader is closed")
        head = q[_HEAD_Q]  # acquire: the records below head are complete
        tail = q[_TAIL_Q]
        n = head - tail
        if n == 0:
            return None
        start = tail & (r.size - 1)
        if start + n <= r.size:
            return memoryview(r.mm), PAGE_SIZE + start, head, tail  # type: ignore[arg-type]
        first = r.size - start
        tmp = bytearray(n)
        tmp[:first] = data[PAGE_SIZE + start:PAGE_SIZE + r.size]
        tmp[first:] = data[PAGE_SIZE:PAGE_SIZE + n - first]
        return memoryview(tmp), 0, head, tail

    def _read_cpu(self, r: _CpuRing) -> Optional[Batch]:
        pending = self._pending(r)
        if pending is None:
            return None
        buf, off0, head, tail = pending
        segments, count, marks = _scan(buf, off0, off0 + head - tail)
        lost = sum(n for _, n in marks)

        def on_release() -> None:
            if r.q is not None:
                r.q[_TAIL_Q] = head  # hands the space back to the kernel
            self.received += count
            if lost:
                self._add_lost(r.cpu, lost)

        return Batch(self, segments, count, 0, lost, on_release, [buf], self.record_type, cpu=r.cpu,
                     header_size=_SAMPLE_HDR)

    # ---- callback API --------------------------------------------------------------------------

    def consume(self, callback: Optional[Callback] = None, max_records: Optional[int] = None) -> int:
        """Call ``callback(sample)`` (default: the reader's) for each sample of every CPU; returns how many.

        ``sample`` is a ``bytes`` copy of the raw data (padded by the kernel to keep records 8-byte
        aligned). If the callback raises, the samples before it and the one that raised count as
        consumed, and the exception propagates."""
        cb = callback or self.callback
        if cb is None:
            raise ValueError("consume() needs a callback (or give callback= to PerfBuffer)")
        self._release_batches()
        total = 0
        for r in self._rings:
            while max_records is None or total < max_records:
                got = self._consume_cpu(r, cb, None if max_records is None else max_records - total)
                if not got:
                    break
                total += got
        return total

    def _consume_cpu(self, r: _CpuRing, cb: Callback, limit: Optional[int]) -> int:
        pending = self._pending(r)
        if pending is None:
            return 0
        buf, off0, head, tail = pending
        end = off0 + head - tail
        segments, count, marks = _scan(buf, off0, end, limit)
        if segments and limit is not None:
            last = segments[-1]
            end = last[1] - _SAMPLE_HDR + last[2] * last[3]  # stop after the limit-th sample
        done = 0
        for seg in segments:
            raw, records = segment_bytes(seg, _SAMPLE_HDR)
            try:
                _drain(starmap(cb, records))
            except BaseException:
                taken = seg[3] - length_hint(raw)
                self._commit_cpu(r, tail, off0, seg[1] - _SAMPLE_HDR + taken * seg[2], marks)
                self.received += done + taken
                raise
            done += seg[3]
        self._commit_cpu(r, tail, off0, end, marks)
        self.received += done
        return done

    def _commit_cpu(self, r: _CpuRing, tail: int, off0: int, stop: int, marks: list[tuple[int, int]]) -> None:
        """Move data_tail to buffer offset ``stop``; count the LOST records before it."""
        if r.q is not None:
            r.q[_TAIL_Q] = tail + (stop - off0)
        lost = sum(n for off, n in marks if off < stop)
        if lost:
            self._add_lost(r.cpu, lost)

    # ---- waiting -------------------------------------------------------------------------------

    def poll(self, timeout: Optional[float] = None, callback: Optional[Callback] = None) -> int:
        """Wait up to ``timeout`` seconds (None: until woken) for samples, then :meth:`consume` them.

        Data already there is consumed without waiting; after a timeout every CPU is drained anyway."""
        if self._has_data():
            return self.consume(callback)
        self._own_poller().wait(timeout)
        return self.consume(callback) if self._has_data() else 0

    def poll_batches(self, timeout: Optional[float] = None) -> list[Batch]:
        """Wait like :meth:`poll`, then return :meth:`read_batches`."""
        self._release_batches()
        if not self._has_data():
            self._own_poller().wait(timeout)
        return self.read_batches()

    def events(self, *, copy: bool = True, interval: float = 0.25) -> AsyncIterator[Any]:
        """``async for`` over samples: decoded values with a record type, else ``bytes``."""
        return self._own_poller().events(copy=copy, interval=interval, with_source=False)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.events()


def _scan(buf: memoryview, p: int, end: int, limit: Optional[int] = None) -> tuple[list[Segment], int, list[tuple[int, int]]]:
    """Sample segments between ``p`` and ``end`` of ``buf``: (segments, samples, [(offset, lost)]).

    Runs of samples of one size are checked with one numpy pass over their headers. With ``limit``,
    stops after that many samples."""
    segments: list[Segment] = []
    count = 0
    marks: list[tuple[int, int]] = []
    while p < end and (limit is None or count < limit):
        typ, _misc, size = _hdr.unpack_from(buf, p)
        if size < 8 or p + size > end:
            raise RuntimeError(f"corrupt perf record: size {size} at offset {p} of {end}")
        if typ == PERF_RECORD_SAMPLE:
            raw = _u32.unpack_from(buf, p + 8)[0]
            length = min(raw, size - _SAMPLE_HDR)
            avail = (end - p) // size
            if limit is not None:
                avail = min(avail, limit - count)
            if avail >= _FAST_MIN:
                hdrs = np.ndarray((avail,), dtype="<u8", buffer=buf, offset=p, strides=(size,))
                same = (hdrs & _TYPE_SIZE_MASK) == (PERF_RECORD_SAMPLE | size << 48)
                k = avail if same.all() else int(same.argmin())
            else:
                k = 1
                q = p + size
                while k < avail:
                    t2, _m2, s2 = _hdr.unpack_from(buf, q)
                    if t2 != PERF_RECORD_SAMPLE or s2 != size:
                        break
                    k += 1
                    q += size
            segments.append((buf, p + _SAMPLE_HDR, size, k, length, None))
            count += k
            p += k * size
        else:
            if typ == PERF_RECORD_LOST:
                marks.append((p, _u64.unpack_from(buf, p + 16)[0]))
            p += size
    return segments, count, marks


__all__ = ["PerfBuffer", "PERF_RECORD_LOST", "PERF_RECORD_SAMPLE", "PERF_SAMPLE_RAW"]
