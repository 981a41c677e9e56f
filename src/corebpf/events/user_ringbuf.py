"""``UserRingBuffer``: write samples from Python into a ``BPF_MAP_TYPE_USER_RINGBUF`` map.

The roles of a ring buffer are reversed: user space produces, a BPF program consumes with
``bpf_user_ringbuf_drain()``. The consumer page is the kernel's (mapped read-only here); the
producer page and the data area (mapped twice by the kernel, so samples never wrap) are ours.

Writing a sample: check the free space against the kernel's consumer position, write the 8-byte
header with the BUSY bit, publish the new producer position, fill the data, then clear BUSY
(submit) or set DISCARD instead (discard). The kernel drains in order and stops at a BUSY sample.
One producer at a time: a UserRingBuffer is not safe to share between threads without a lock.
"""

from __future__ import annotations

import mmap
import select
import time
from typing import Any, Optional

from ..errors import CoreBPFError
from ..maps import Map, MapType
from ._common import PAGE_SIZE, drop_mmap, open_map, release_view
from .ringbuf import BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT, BPF_RINGBUF_HDR_SZ
from .._sys.closing import Closing

_MAX_SAMPLE = (1 << 24) - 1  # the kernel hands samples to programs as dynptrs (24-bit sizes)


class RingFullError(CoreBPFError, BufferError):
    """No room for the sample: the program has not drained the ring (yet)."""


class Sample:
    """Space reserved in a user ring buffer: fill :attr:`data`, then :meth:`submit` or :meth:`discard`.

    As a context manager it submits on success and discards when the block raises.
    """

    __slots__ = ("_ring", "_hdr", "size", "data")

    def __init__(self, ring: "UserRingBuffer", hdr: int, size: int, data: memoryview) -> None:
        self._ring: Optional[UserRingBuffer] = ring
        self._hdr = hdr
        self.size = size
        """Bytes reserved (what the program's dynptr will hold)."""
        self.data = data
        """Writable memoryview of the sample; invalid after submit/discard."""

    def submit(self) -> None:
        """Make the sample visible to the program."""
        self._finish(0)

    def discard(self) -> None:
        """Give the space back: the program skips this sample."""
        self._finish(BPF_RINGBUF_DISCARD_BIT)

    def _finish(self, flag: int) -> None:
        ring, self._ring = self._ring, None
        if ring is None:
            raise ValueError("this sample was already submitted or discarded")
        release_view(self.data)
        ring._finish(self._hdr, self.size, flag)

    @property
    def done(self) -> bool:
        """True once submitted or discarded."""
        return self._ring is None

    def __enter__(self) -> "Sample":
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if self._ring is None:
            return
        if exc_type is None:
            self.submit()
        else:
            self.discard()

    def __repr__(self) -> str:
        return f"<Sample {self.size} bytes{' done' if self._ring is None else ''}>"


class UserRingBuffer(Closing):
    """The producer side of a ``user_ringbuf`` map (a :class:`~corebpf.Map`, map fd or pin path).

    ``ring.write(b"...")`` copies one sample in; ``with ring.reserve(n) as s: s.data[:] = ...``
    fills one in place. Both wait up to ``timeout`` seconds for room (default: fail at once with
    :class:`RingFullError`); room appears when a program calls ``bpf_user_ringbuf_drain``.
    """

    def __init__(self, map: Any) -> None:
        self._map: Optional[Map] = None
        self._cons_mm: Optional[mmap.mmap] = None
        self._prod_mm: Optional[mmap.mmap] = None
        self._ep: Optional[select.epoll] = None
        m = open_map(map, MapType.USER_RINGBUF, "UserRingBuffer")
        try:
            size = m.max_entries
            self.size: int = size
            """Bytes of the data area (the map's max_entries)."""
            self._mask = size - 1
            self._cons_mm = m.mmap(PAGE_SIZE, 0, writable=False)
            self._prod_mm = m.mmap(PAGE_SIZE + 2 * size, PAGE_SIZE, writable=True)
        except BaseException:
            self._unmap()
            m.close()
            raise
        self._map = m
        self._cons_q = memoryview(self._cons_mm).cast("Q")
        self._prod_q = memoryview(self._prod_mm).cast("Q")
        self._words = memoryview(self._prod_mm).cast("I")
        self._data = memoryview(self._prod_mm)
        self._outstanding = 0

    # ---- lifetime ----------------------------------------------------------------------------

    @property
    def map(self) -> Map:
        """The user ring buffer map (this writer's own fd)."""
        if self._map is None:
            raise ValueError("the user ring buffer is closed")
        return self._map

    def fileno(self) -> int:
        """The map fd: writable (EPOLLOUT) when the program has drained something."""
        return self.map.fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._map is None

    def _check_open(self) -> None:
        if self._map is None:
            raise ValueError("the user ring buffer is closed")

    def close(self) -> None:
        """Unmap and close the fd (idempotent). Samples still reserved stay BUSY: the program stops at them."""
        if self._map is None:
            return
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        for name in ("_cons_q", "_prod_q", "_words", "_data"):
            release_view(getattr(self, name, None))
            setattr(self, name, None)
        self._unmap()
        m, self._map = self._map, None
        m.close()

    def _unmap(self) -> None:
        drop_mmap(self, "_cons_mm")
        drop_mmap(self, "_prod_mm")

    def __repr__(self) -> str:
        if self._map is None:
            return "<UserRingBuffer closed>"
        return f"<UserRingBuffer {self._map.name!r} size={self.size} free={self.free}>"

    # ---- space ---------------------------------------------------------------------------------

    @property
    def free(self) -> int:
        """Bytes free for new samples (each takes its size + 8, rounded up to 8)."""
        self._check_open()
        return self.size - (self._prod_q[0] - self._cons_q[0])

    @property
    def pending(self) -> int:
        """Bytes written (or reserved) that the program has not drained yet."""
        self._check_open()
        return self._prod_q[0] - self._cons_q[0]

    def _wait_for_room(self, total: int, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.size - (self._prod_q[0] - self._cons_q[0]) < total:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise RingFullError(f"no room for a {total}-byte sample: {self.free} of {self.size} bytes free; "
                                    "a program must drain the ring (bpf_user_ringbuf_drain)")
            if self._ep is None:
                self._ep = select.epoll()
                self._ep.register(self.fileno(), select.EPOLLOUT)
            # the kernel wakes writers after a drain; re-check at least every 100 ms regardless
            self._ep.poll(0.1 if left is None else min(left, 0.1))

    # ---- writing -------------------------------------------------------------------------------

    def reserve(self, size: int, timeout: Optional[float] = 0.0) -> Sample:
        """Reserve ``size`` bytes; fill ``sample.data`` then submit or discard it.

        ``timeout``: seconds to wait for room (0: fail at once, None: wait as long as it takes).
        Raises :class:`RingFullError` when there is no room in time, ``ValueError`` for a sample that
        can never fit."""
        self._check_open()
        if size < 0 or size > _MAX_SAMPLE:
            raise ValueError(f"sample size {size} out of range (0..{_MAX_SAMPLE})")
        total = (size + BPF_RINGBUF_HDR_SZ + 7) & ~7
        if total > self.size:
            raise ValueError(f"a {size}-byte sample needs {total} bytes; the ring holds {self.size}")
        if timeout is None or timeout > 0:
            self._wait_for_room(total, timeout)
        prod = self._prod_q[0]
        if self.size - (prod - self._cons_q[0]) < total:
            raise RingFullError(f"no room for a {size}-byte sample: {self.size - (prod - self._cons_q[0])} of "
                                f"{self.size} bytes free; a program must drain the ring (bpf_user_ringbuf_drain)")
        hdr = PAGE_SIZE + (prod & self._mask)
        w = hdr >> 2
        self._words[w] = size | BPF_RINGBUF_BUSY_BIT
        self._words[w + 1] = 0
        # publish after the header: the kernel reads the header only below the producer position
        self._prod_q[0] = prod + total
        self._outstanding += 1
        start = hdr + BPF_RINGBUF_HDR_SZ
        return Sample(self, hdr, size, self._data[start:start + size])

    def _finish(self, hdr: int, size: int, flag: int) -> None:
        self._outstanding -= 1
        if self._words is None:
            return  # closed meanwhile
        self._words[hdr >> 2] = size | flag

    def write(self, data: "bytes | bytearray | memoryview", timeout: Optional[float] = 0.0) -> None:
        """Copy ``data`` into a new sample and submit it."""
        mv = memoryview(data).cast("B")
        sample = self.reserve(len(mv), timeout)
        try:
            sample.data[:] = mv
        except BaseException:
            sample.discard()
            raise
        sample.submit()

    def write_many(self, records: Any, timeout: Optional[float] = 0.0) -> int:
        """Write each item of ``records`` (bytes-likes, or rows of a numpy array); returns how many."""
        n = 0
        for rec in records:
            self.write(rec.tobytes() if hasattr(rec, "tobytes") else rec, timeout)
            n += 1
        return n


__all__ = ["UserRingBuffer", "Sample", "RingFullError"]
