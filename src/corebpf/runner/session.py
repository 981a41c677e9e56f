"""``Session``: attach every program of a loaded object and stream what it sends.

    >>> with corebpf.load("prog.bpf.o") as obj, Session(obj, types={"events": "event"}) as s:
    ...     for item in s.items(duration=5):
    ...         print(item)          # Event(map='events', value={...}), Lost(...), TraceLine(...)

Readers are opened before anything is attached (a perf buffer must be in its map before the first
``bpf_perf_event_output``); at the end the programs are detached first and the buffers drained
after, so every record sent while attached is handed out. One epoll set waits on the buffers (a
:class:`~corebpf.events.Poller`), ``trace_pipe`` and a stop pipe, so :meth:`Session.stop` (safe
from a signal handler) ends a wait at once.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from typing import Any, Mapping, Optional, Union

from ..errors import CoreBPFError
from ..events import PerfBuffer, Poller, RecordType, RingBuffer
from ..events.batch import Batch
from .record_types import buffer_maps, record_type_for
from .records import Event, Item, Lost, TraceLine
from .trace_pipe import TracePipe
from .._sys.closing import Closing

__all__ = ["Session", "uses_printk", "PRINTK_HELPERS"]

PRINTK_HELPERS = frozenset({"bpf_trace_printk", "bpf_trace_vprintk"})
Reader = Union[RingBuffer, PerfBuffer]


def uses_printk(obj: Any) -> bool:
    """True when a program of ``obj`` calls ``bpf_trace_printk``/``bpf_trace_vprintk`` (``bpf_printk``)."""
    from ..analysis.requirements import analyze_program

    spec = obj.spec
    for name in obj.programs:
        prog = spec.programs.get(name)
        if prog is not None and PRINTK_HELPERS & set(analyze_program(spec, prog).helpers):
            return True
    return False


class Session(Closing):
    """Attach all programs of ``obj`` (a loaded :class:`corebpf.Object`) and read their output.

    ``types`` names record types of buffer maps (``{"events": "event"}``, ``"*"`` for all; see
    :mod:`corebpf.runner.record_types` for the defaults). ``trace``: read ``trace_pipe`` (True),
    never (False), or when a program calls ``bpf_printk`` (None; then a tracefs that cannot be
    opened only sets :attr:`trace_error`). ``targets`` gives attach targets per program (see
    :func:`corebpf.links.attach_all`); programs whose section names no target are skipped and
    listed in ``links.skipped``. Closing detaches everything and closes the readers; the object
    itself stays open (it belongs to the caller).
    """

    def __init__(self, obj: Any, *, types: Optional[Mapping[str, str]] = None, trace: Optional[bool] = None,
                 targets: Optional[Mapping[str, Mapping[str, Any]]] = None, perf_pages: int = 8) -> None:
        from ..links import AttachReport, attach_all

        self.obj = obj
        self.record_types: dict[str, Optional[RecordType]] = {}
        """Record type per buffer map (None: records stay raw bytes)."""
        self.buffers: dict[str, Reader] = {}
        """Readers of the object's ring buffers and perf event arrays, by map name."""
        self.links: AttachReport = AttachReport()
        """What was attached (``links.links``) and what was skipped with why (``links.skipped``)."""
        self.trace: Optional[TracePipe] = None
        self.trace_error: Optional[str] = None
        """Why ``trace_pipe`` is not read although a program calls bpf_printk (None otherwise)."""
        self.counts = {"events": 0, "lost": 0, "trace_lines": 0}
        """Items handed out so far: buffer records, samples reported lost, trace lines."""
        self._names: dict[int, str] = {}
        self._poller: Optional[Poller] = None
        self._ep: Optional[select.epoll] = None
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stopped = False
        self._closed = False
        try:
            explicit = dict(types or {})
            unknown = sorted(set(explicit) - {"*"} - set(buffer_maps(obj)))
            if unknown:
                have = ", ".join(buffer_maps(obj)) or "none"
                raise CoreBPFError(f"--type for {', '.join(unknown)}: not a ring/perf buffer map of the object "
                                   f"(its buffer maps: {have})")
            self._open_readers(explicit, perf_pages)
            self._open_trace(trace)
            self._make_epoll()
            # Object.attach_all also closes the links with the object; plain objects go through links
            attach = getattr(obj, "attach_all", None)
            self.links = attach(targets) if callable(attach) else attach_all(obj, targets)
        except BaseException:
            self.close()
            raise

    # ---- setup ---------------------------------------------------------------------------------

    def _open_readers(self, explicit: Mapping[str, str], perf_pages: int) -> None:
        self._poller = Poller()
        for name, m in buffer_maps(self.obj).items():
            rt = record_type_for(self.obj, name, explicit)
            self.record_types[name] = rt
            reader: Reader = (RingBuffer(m, record_type=rt) if m.type.name == "RINGBUF"
                              else PerfBuffer(m, pages=perf_pages, record_type=rt))
            self.buffers[name] = reader
            self._names[id(reader)] = name
            self._poller.add(reader)

    def _open_trace(self, trace: Optional[bool]) -> None:
        if trace is False or (trace is None and not uses_printk(self.obj)):
            return
        try:
            self.trace = TracePipe()
        except CoreBPFError as exc:
            if trace:
                raise
            self.trace_error = str(exc)
            return
        self.trace.read_lines()  # lines written before our programs were attached are not theirs

    def _make_epoll(self) -> None:
        self._ep = select.epoll()
        self._ep.register(self._stop_r, select.EPOLLIN)
        if self._poller is not None and len(self._poller):
            self._ep.register(self._poller.fileno(), select.EPOLLIN)
        if self.trace is not None:
            self._ep.register(self.trace.fileno(), select.EPOLLIN)

    # ---- reading -------------------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopped

    def stop(self) -> None:
        """Make :meth:`items` finish (detach, drain, return); safe to call from a signal handler."""
        self._stopped = True
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass  # the pipe is full (already woken) or closed

    def _decode(self, batch: Batch) -> list[Item]:
        name = self._names.get(id(batch.source), "?")
        rt = batch.record_type
        out: list[Item] = []
        for raw in batch.iter_bytes():
            value: Any = raw
            tname = None
            if rt is not None:
                try:
                    value, tname = rt.decode(raw), rt.name
                except CoreBPFError:
                    value = raw  # a record shorter than its type: show the bytes rather than stop
            out.append(Event(name, value, batch.cpu, tname))
        if batch.lost:
            out.append(Lost(name, batch.lost, batch.cpu))
        return out

    def read(self) -> list[Item]:
        """Everything waiting now in the buffers and ``trace_pipe``, without blocking."""
        out: list[Item] = []
        if self._poller is not None and not self._poller.closed:
            for batch in self._poller.read_batches():
                out.extend(self._decode(batch))
                batch.release()
        if self.trace is not None and not self.trace.closed:
            out.extend(self.trace.read_lines())
        for item in out:
            key = "events" if isinstance(item, Event) else "trace_lines" if isinstance(item, TraceLine) else "lost"
            self.counts[key] += item.count if isinstance(item, Lost) else 1
        return out

    def wait(self, timeout: Optional[float]) -> bool:
        """Block until a buffer or ``trace_pipe`` has data, :meth:`stop` is called, or ``timeout`` seconds
        pass (None: no limit). True unless it timed out."""
        if self._ep is None:
            raise ValueError("the session is closed")
        return bool(self._ep.poll(-1 if timeout is None else max(0.0, timeout)))

    def items(self, duration: Optional[float] = None, interval: float = 1.0) -> Iterator[Item]:
        """Every event, lost-sample notice and trace line, as they come, until :meth:`stop` is called or
        ``duration`` seconds pass; then the programs are detached and what is left is handed out.

        ``interval`` bounds each wait, so records sent without a wakeup are picked up in time."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stopped and not self._closed:
            got = self.read()
            yield from got
            if self._closed:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if not got:
                self.wait(interval if remaining is None else min(interval, remaining))
        if self._closed:
            return
        self.detach()
        yield from self.read()

    # ---- lifetime ------------------------------------------------------------------------------

    def detach(self) -> None:
        """Detach every program (idempotent); the readers stay open so what was sent can be read."""
        self.links.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    def close(self) -> None:
        """Detach everything, close the readers, ``trace_pipe`` and the epoll set (idempotent)."""
        if self._closed:
            return
        self._closed = True
        first: Optional[BaseException] = None
        for step in (self.detach, self._close_readers):
            try:
                step()
            except Exception as exc:  # keep releasing the rest; report the first failure
                first = first or exc
        if first is not None:
            raise first

    def _close_readers(self) -> None:
        if self._ep is not None:
            self._ep.close()
            self._ep = None
        if self._poller is not None:
            self._poller.close()
        for reader in self.buffers.values():
            reader.close()
        if self.trace is not None:
            self.trace.close()
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = -1

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.links.links)} attached"
        return f"<Session {getattr(self.obj, 'name', '?')!r} buffers={list(self.buffers)} {state}>"
