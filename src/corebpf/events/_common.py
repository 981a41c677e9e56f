"""Shared pieces of the event readers: page size, owned map fds, mmap release, record-type lookup."""

from __future__ import annotations

import mmap
import os
import sys
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union
from weakref import WeakSet

from .._sys.fd import FD
from ..maps import Map, MapType
from ..maps.info import fd_kind, map_info

if TYPE_CHECKING:  # pragma: no cover
    from .batch import Batch

PAGE_SIZE = mmap.PAGESIZE

MapLike = Union[Map, int, FD, "os.PathLike[str]", str]
"""A map given as a :class:`~corebpf.Map`, an fd number, an :class:`FD`, or a bpffs pin path."""


def open_map(source: Any, want: MapType, what: str) -> Map:
    """A :class:`Map` of type ``want`` that this reader owns (the caller's object is left open).

    The reader holds its own fd (a duplicate), so closing the caller's Map does not pull the ring
    out from under a poller, and closing the reader never closes the caller's Map.
    """
    if isinstance(source, Map):
        m = Map.from_fd(source.fileno())
    elif isinstance(source, FD):
        m = Map.from_fd(source.fileno())
    elif isinstance(source, int) and not isinstance(source, bool):
        m = Map.from_fd(source)
    elif isinstance(source, (str, os.PathLike)):
        m = Map.from_pin(source)
    elif hasattr(source, "fileno") and fd_kind(source.fileno()) == "map":
        m = Map.from_fd(source.fileno())
    else:
        raise TypeError(f"{what} needs a Map, a map fd or a pin path, not {type(source).__name__}")
    if m.type != want:
        got = m.type.name.lower() if isinstance(m.type, MapType) else str(m.type)
        m.close()
        raise ValueError(f"{what} needs a {want.name.lower()} map, got a {got} map {m.name!r}")
    return m


def drop_mmap(owner: Any, attr: str) -> None:
    """Let go of the mmap in ``owner.<attr>``: unmap it now unless something else still refers to it.

    numpy arrays made over a mapping keep the mmap object as their ``base`` without holding a buffer
    export, so ``mmap.close()`` would succeed and leave them pointing at unmapped memory. Closing only
    when our reference is the last one (CPython's reference count says so) avoids that; otherwise the
    mmap unmaps itself when the last array or view referring to it goes away. Never a dangling view.
    """
    mm = getattr(owner, attr, None)
    setattr(owner, attr, None)
    if mm is None or mm.closed:
        return
    if sys.getrefcount(mm) <= 2:  # the local name and getrefcount's argument: nobody else
        try:
            mm.close()
        except BufferError:
            pass  # a memoryview still exports it: it unmaps when that view goes


def release_view(mv: Optional[memoryview]) -> None:
    """Release a memoryview we created, tolerating exports (numpy arrays) made from it."""
    if mv is None:
        return
    try:
        mv.release()
    except BufferError:
        pass


def online_cpus() -> list[int]:
    """CPUs that are online now (perf events can only be opened on those)."""
    from ..maps.percpu import parse_cpu_list

    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError):
        return list(range(os.cpu_count() or 1))


__all__ = ["PAGE_SIZE", "MapLike", "open_map", "drop_mmap", "release_view", "online_cpus", "map_info"]


class PolledSource:
    """What the ring and perf buffer readers share about pollers: a private one made on first wait
    (for ``poll``/``batches``/``events``), and the pollers that watch them, told to forget them on close."""

    _poller: Any
    _pollers: "WeakSet[Any]"

    def _init_polling(self) -> None:
        self._poller = None
        self._pollers = WeakSet()

    def _own_poller(self) -> Any:
        if self._poller is None:
            from .poller import Poller

            self._poller = Poller(self)
        return self._poller

    def batches(self, timeout: Optional[float] = None) -> "Iterator[Batch]":
        """``for batch in reader.batches(timeout=1.0)``: batches as they come (waiting like ``poll``),
        each released when the next is asked for; ends when a wait of ``timeout`` seconds finds nothing
        (None: never)."""
        return self._own_poller().batches(timeout)

    def _detach_pollers(self) -> None:
        """Close our own poller and unregister from the others (while our fds still name the files)."""
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        for poller in list(self._pollers):
            poller._forget(self)
