"""``Poller``: wait on several ring and perf buffers at once (one epoll set), and iterate them from asyncio.

Readiness only tells us the kernel *woke* consumers. A producer may skip wakeups (``BPF_RB_NO_WAKEUP``,
perf ``wakeup_events`` > 1), so every wait ends by checking every buffer's positions: data is drained
when it is there, whether or not a wakeup came, at the latest one timeout later.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Optional

from .batch import Batch


class Poller:
    """An epoll set over ring buffers (:class:`RingBuffer`) and perf buffers (:class:`PerfBuffer`).

    ``Poller(ring_a, perf_b)`` or :meth:`add` one by one, each with an optional callback that
    overrides the buffer's own. :meth:`poll` waits and calls callbacks; :meth:`poll_batches` waits and
    returns batches; ``async for source, value in poller.events()`` iterates from asyncio. The
    poller does not own the buffers: closing it leaves them open; closing a buffer removes it from
    its pollers. Use a poller from one thread at a time.
    """

    def __init__(self, *sources: Any) -> None:
        self._ep: Optional[select.epoll] = select.epoll()
        self._sources: list[tuple[Any, Optional[Callable[[bytes], Any]]]] = []
        self._fds: dict[int, Any] = {}
        try:
            for s in sources:
                self.add(s)
        except BaseException:
            self.close()
            raise

    # ---- membership ----------------------------------------------------------------------------

    def add(self, source: Any, callback: Optional[Callable[[bytes], Any]] = None) -> None:
        """Watch ``source`` (a RingBuffer or PerfBuffer); ``callback(record_bytes)`` overrides its own
        for :meth:`poll` / :meth:`consume` (one of the two is needed there, not for batches)."""
        ep = self._epoll()
        if any(s is source for s, _ in self._sources):
            raise ValueError(f"{source!r} is already in this poller")
        fds = source._wait_fds()
        done: list[int] = []
        try:
            for fd in fds:
                ep.register(fd, select.EPOLLIN)
                done.append(fd)
                self._fds[fd] = source
        except BaseException:
            for fd in done:
                ep.unregister(fd)
                self._fds.pop(fd, None)
            raise
        self._sources.append((source, callback))
        source._pollers.add(self)

    def remove(self, source: Any) -> None:
        """Stop watching ``source`` (it stays open). Closing a source removes it by itself."""
        if not any(s is source for s, _ in self._sources):
            raise ValueError(f"{source!r} is not in this poller")
        self._forget(source)

    def _forget(self, source: Any) -> None:
        self._sources = [(s, cb) for s, cb in self._sources if s is not source]
        source._pollers.discard(self)
        for fd in [fd for fd, s in self._fds.items() if s is source]:
            del self._fds[fd]
            if self._ep is not None:
                try:
                    self._ep.unregister(fd)
                except (OSError, ValueError):
                    pass  # the fd is already gone (closed elsewhere): nothing left to unregister

    @property
    def sources(self) -> list[Any]:
        """The buffers watched, in the order added."""
        return [s for s, _ in self._sources]

    def __len__(self) -> int:
        return len(self._sources)

    # ---- lifetime ------------------------------------------------------------------------------

    def _epoll(self) -> select.epoll:
        if self._ep is None:
            raise ValueError("the poller is closed")
        return self._ep

    def fileno(self) -> int:
        """The epoll fd: readable when any watched buffer was woken (usable in another event loop)."""
        return self._epoll().fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._ep is None

    def close(self) -> None:
        """Close the epoll fd (idempotent); the buffers stay open."""
        ep, self._ep = self._ep, None
        if ep is not None:
            ep.close()
        for s, _ in self._sources:
            s._pollers.discard(self)
        self._sources = []
        self._fds = {}

    def __enter__(self) -> "Poller":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Poller {len(self._sources)} buffers{' closed' if self._ep is None else ''}>"

    # ---- waiting ---------------------------------------------------------------------------------

    def _live(self) -> list[tuple[Any, Optional[Callable[[bytes], Any]]]]:
        return [(s, cb) for s, cb in self._sources if not s.closed]

    def has_data(self) -> bool:
        """True when any buffer holds records (whatever the wakeups said)."""
        return any(s._has_data() for s, _ in self._live())

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until a buffer is woken or ``timeout`` seconds pass (None: no limit); True if woken."""
        events = self._epoll().poll(-1 if timeout is None else max(0.0, timeout))
        return bool(events)

    def consume(self) -> int:
        """Drain every buffer now, calling callbacks; returns the records handled."""
        total = 0
        for s, cb in self._live():
            if s._has_data():
                total += s.consume(cb or s.callback)
        return total

    def poll(self, timeout: Optional[float] = None) -> int:
        """Consume what is there; if nothing, wait up to ``timeout`` seconds and consume then.

        Returns the records handled (0 on a timeout with nothing to read)."""
        if self.has_data():
            return self.consume()
        self.wait(timeout)
        return self.consume()

    def read_batches(self) -> list[Batch]:
        """One batch per buffer (per CPU for perf buffers) that holds records, without waiting.

        Batches from the previous call are released first."""
        out: list[Batch] = []
        for s, _ in self._live():
            s._release_batches()
            if s._has_data():
                out.extend(s.read_batches())
        return out

    def poll_batches(self, timeout: Optional[float] = None) -> list[Batch]:
        """Like :meth:`read_batches`, waiting up to ``timeout`` seconds when nothing is there."""
        for s, _ in self._live():
            s._release_batches()
        if not self.has_data():
            self.wait(timeout)
        return self.read_batches()

    def release(self) -> None:
        """Release every outstanding batch of every buffer."""
        for s, _ in self._live():
            s._release_batches()

    # ---- asyncio ----------------------------------------------------------------------------------

    def events(self, *, copy: bool = True, interval: float = 0.25,
               with_source: bool = True) -> AsyncIterator[Any]:
        """``async for source, value in poller.events()``: every record of every buffer.

        ``value`` is decoded through the buffer's record type when it has one, else ``bytes`` (a copy;
        ``copy=False`` yields the memoryview itself, valid until the next record is requested).
        The wait is the event loop's: the epoll fd is registered with ``loop.add_reader``; the buffers
        are drained at least every ``interval`` seconds (producers that skip wakeups).
        """
        return _events(self, copy, interval, with_source)

    def abatches(self, *, interval: float = 0.25) -> AsyncIterator[Batch]:
        """``async for batch in poller.abatches()``: zero-copy batches, each released when the next is asked for."""
        return _batches(self, interval)

    def batches(self, timeout: Optional[float] = None) -> Iterator[Batch]:
        """``for batch in poller.batches(timeout=1.0)``: batches as they come, each released when the
        next is asked for; ends when a wait of ``timeout`` seconds finds nothing (None: never)."""
        try:
            while not self.closed:
                batches = self.poll_batches(timeout)
                if not batches:
                    if timeout is not None:
                        return
                    continue
                yield from batches
        finally:
            if not self.closed:
                self.release()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.events()


async def _wait_readable(poller: Poller, interval: float) -> None:
    loop = asyncio.get_running_loop()
    woke = loop.create_future()
    fd = poller.fileno()

    def on_ready() -> None:
        if not woke.done():
            woke.set_result(None)

    loop.add_reader(fd, on_ready)
    try:
        await asyncio.wait_for(woke, interval)
    except asyncio.TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
    poller._epoll().poll(0)  # collect the wakeup so the epoll fd is not readable until the next one


async def _batches(poller: Poller, interval: float) -> AsyncIterator[Batch]:
    try:
        while not poller.closed:
            batches = poller.read_batches()
            if not batches:
                await _wait_readable(poller, interval)
                continue
            for b in batches:
                yield b
            # the consumer asked for more: hand these records back to the producer
            for b in batches:
                b.release()
    finally:
        if not poller.closed:
            poller.release()


async def _events(poller: Poller, copy: bool, interval: float, with_source: bool) -> AsyncIterator[Any]:
    async for batch in _batches(poller, interval):
        src = batch.source
        rt = batch.record_type
        for view in batch:
            if rt is not None:
                value: Any = rt.decode(view)
            elif copy:
                value = bytes(view)
            else:
                value = view
            yield (src, value) if with_source else value


__all__ = ["Poller"]
