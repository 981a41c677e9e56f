"""Owned file descriptors: closed exactly once, by ``close()``, ``with`` or garbage collection."""

from __future__ import annotations

import os
from .closing import Closing


class FD(Closing):
    """A file descriptor this process owns (a BPF object, perf event, epoll instance...).

    ``int(fd)`` and ``fd.fileno()`` give the number; ``close()`` releases it and is idempotent.
    An FD not closed explicitly is closed when garbage-collected, so a failure halfway through a
    load never leaks kernel objects.
    """

    __slots__ = ("_fd", "__weakref__")

    def __init__(self, fd: int) -> None:
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd = fd

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("file descriptor is closed")
        return self._fd

    __int__ = fileno
    __index__ = fileno

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership and return the raw number (the caller must close it)."""
        fd, self._fd = self._fd, -1
        return fd

    def dup(self) -> "FD":
        return FD(os.dup(self.fileno()))

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"
