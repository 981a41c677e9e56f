"""Read events programs send, and send events to programs.

* :class:`RingBuffer` -- a ``ringbuf`` map: zero-copy batches (memoryviews, numpy), callbacks, asyncio;
* :class:`PerfBuffer` -- a ``perf_event_array``: per-CPU perf rings, lost-sample counts, same APIs;
* :class:`UserRingBuffer` -- a ``user_ringbuf`` map: write samples that a program drains;
* :class:`Poller` -- wait on several of them at once (epoll), or from asyncio;
* :class:`RecordType` -- typed records through BTF (Python values, numpy structured arrays).

    >>> with corebpf.RingBuffer(obj.maps["events"], record_type=btf.find("event")) as ring:
    ...     with ring.poll_batch(timeout=1.0) as batch:
    ...         arr = batch.array()          # zero-copy numpy view, valid until the batch is released
    ...         print(arr["pid"].sum(), batch.discarded)
"""

from __future__ import annotations

from .batch import Batch, BatchReleasedError
from .perfbuf import PerfBuffer
from .poller import Poller
from .ringbuf import BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, RingBuffer
from .typed import RecordType
from .user_ringbuf import RingFullError, Sample, UserRingBuffer

__all__ = ["Batch", "BatchReleasedError", "PerfBuffer", "Poller", "RecordType", "RingBuffer", "RingFullError",
           "Sample", "UserRingBuffer", "BPF_RB_FORCE_WAKEUP", "BPF_RB_NO_WAKEUP"]
