"""``Link``: one attachment of a program, undone when closed.

A link owns whatever keeps the program attached: a BPF link fd, a perf event fd, a tracefs probe
entry, a netlink-attached XDP/tc program, a legacy ``BPF_PROG_ATTACH``... Closing it (or leaving its
``with`` block, or garbage collection) releases those in reverse order, so the program stops running
there. Only attachments made through a BPF link (``link.fd`` is set) can be pinned, updated or
reopened from a pin.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable, Optional

from .._sys import _generated as g
from .._sys import ops
from .._sys.fd import FD
from ..errors import CoreBPFError
from .planb import Attempt

Cleanup = Callable[[], None]


class LinkError(CoreBPFError):
    """An operation the link's attach method does not allow (e.g. pinning a netlink attachment)."""


def _run_all(cleanups: list[Cleanup]) -> None:
    """Run cleanups newest first; every one runs even when an earlier one fails."""
    first: Optional[BaseException] = None
    while cleanups:
        fn = cleanups.pop()
        try:
            fn()
        except Exception as exc:  # keep undoing the rest; report the first failure
            first = first or exc
    if first is not None:
        raise first


class Link:
    """A program attached somewhere.

    Attributes:
        method: how it was attached: ``"bpf_link"``, ``"tcx_link"``, ``"<perf source>+bpf_link"`` or
            ``"<perf source>+ioctl"`` (perf source: ``perf_event``, ``kprobe_pmu``, ``uprobe_pmu``, ``tracefs``),
            ``"netlink"``, ``"prog_attach"``, ``"setsockopt"``, ``"map_update"``, ``"pinned"``; a link made by
            :func:`corebpf.links.fallback` is prefixed with the kind used (``"tracepoint:perf_event+bpf_link"``).
        target: the attach point in one line (``"tracepoint syscalls/sys_enter_getpgid"``).
        attempts: the plan-B record: every method tried, in order, with why it failed.
    """

    def __init__(self, target: str, method: str, fd: Optional[FD] = None,
                 cleanups: Optional[list[Cleanup]] = None, attempts: Optional[list[Attempt]] = None) -> None:
        """Wrap an attachment. ``fd`` is the BPF link fd when there is one; ``cleanups`` undo the rest
        (run newest first, after the fd is closed)."""
        self.target = target
        self.method = method
        self.attempts: list[Attempt] = list(attempts or [])
        self._fd = fd
        self.pinned_at: list[str] = []
        """Paths this link was pinned at by :meth:`pin` (cleanups that would break a pin check it)."""
        self._cleanups: list[Cleanup] = list(cleanups or [])
        # undo non-fd state (tracefs entries, netlink attachments, qdiscs) even if never closed
        self._finalizer = weakref.finalize(self, _run_all, self._cleanups)

    # ---- construction helpers --------------------------------------------------------------------

    @classmethod
    def from_pin(cls, path: "str | os.PathLike[str]") -> "Link":
        """Open the BPF link pinned at ``path`` (it stays attached while pinned or open)."""
        p = os.fspath(path)
        fd = ops.obj_get(p)
        from ..maps.info import fd_kind

        if fd_kind(fd.fileno()) != "link":
            fd.close()
            raise LinkError(f"{p} is pinned, but not a BPF link")
        return cls(f"pinned {p}", "pinned", fd)

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        """Open the BPF link with this id."""
        return cls(f"link id {link_id}", "by_id", ops.get_fd_by_id("link", link_id))

    def add_cleanup(self, fn: Cleanup, *, last: bool = False) -> None:
        """Run ``fn`` when the link closes: before what was registered earlier (newest first), or with
        ``last`` after everything else (for state created before the link's other resources)."""
        if last:
            self._cleanups.insert(0, fn)
        else:
            self._cleanups.append(fn)

    # ---- lifetime --------------------------------------------------------------------------------

    @property
    def fd(self) -> Optional[FD]:
        """The BPF link fd, or None for attachments that are not BPF links."""
        return self._fd

    def fileno(self) -> int:
        """The BPF link fd number (raises :class:`LinkError` when there is no BPF link)."""
        return self._require_fd("fileno").fileno()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return not self._finalizer.alive and (self._fd is None or self._fd.closed)

    def close(self) -> None:
        """Detach (unless pinned elsewhere) and release everything; idempotent."""
        if self._fd is not None:
            self._fd.close()
        self._finalizer()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else (f"fd={self._fd.fileno()}" if self._fd is not None
                                               and not self._fd.closed else "open")
        return f"<Link {self.target} via {self.method} {state}>"

    # ---- BPF link operations ----------------------------------------------------------------------

    def _require_fd(self, what: str) -> FD:
        if self._fd is None or self._fd.closed:
            raise LinkError(f"cannot {what} {self.target}: it was attached with {self.method}, not a BPF link"
                            if self._fd is None else f"cannot {what}: link is closed")
        return self._fd

    def pin(self, path: "str | os.PathLike[str]") -> None:
        """Pin the BPF link at ``path`` (in a bpffs) so the attachment outlives this process.

        Non-link attachments (netlink, legacy attach, setsockopt, perf ioctl) cannot be pinned. A pinned
        kprobe made through tracefs keeps its ``kprobe_events`` entry until the pin is removed and
        this link closes.
        """
        fd = self._require_fd("pin")
        p = os.fspath(path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(p)) or "/"):
            raise LinkError(f"cannot pin at {p}: directory does not exist")
        ops.obj_pin(fd.fileno(), p)
        self.pinned_at.append(p)

    @staticmethod
    def unpin(path: "str | os.PathLike[str]") -> None:
        """Remove a pin (the link detaches when no pin or fd holds it any more)."""
        os.unlink(os.fspath(path))

    def update(self, program: Any, old_program: Any = None) -> None:
        """Replace the program of this BPF link atomically (``old_program``: only if that one runs)."""
        fd = self._require_fd("update")
        ops.link_update(fd.fileno(), _fileno(program), _fileno(old_program) if old_program is not None else 0,
                        flags=4 if old_program is not None else 0)  # BPF_F_REPLACE

    def detach(self) -> None:
        """Force the BPF link off its hook now (even if pinned elsewhere); the fd stays open (defunct)."""
        ops.link_detach(self._require_fd("detach").fileno())

    @property
    def info(self) -> g.LinkInfo:
        """The kernel's ``bpf_link_info`` (type, id, prog_id and the type's fields)."""
        info = g.LinkInfo()
        ops.obj_get_info_by_fd(self._require_fd("read info of").fileno(), info)
        return info

    @property
    def attach_info(self) -> Any:
        """The kernel's view of where this BPF link is attached, decoded by type
        (:class:`corebpf.inventory.attach.LinkAttach`; ``.target`` is one line, e.g. ``"sys_enter"``)."""
        from ..inventory.attach import decode_attach

        return decode_attach(self._require_fd("read info of").fileno(), self.info)

    @property
    def id(self) -> int:
        """The BPF link id."""
        return int(self.info.id)


class MultiLink(Link):
    """Several attachments acting as one (a perf event per CPU, a probe per USDT location)."""

    def __init__(self, target: str, method: str, links: list[Link], attempts: Optional[list[Attempt]] = None) -> None:
        """Own ``links``; closing closes them all."""
        super().__init__(target, method, None, [lk.close for lk in links], attempts)
        self.links = links

    def pin(self, path: "str | os.PathLike[str]") -> None:
        """Pin every part as ``path.0``, ``path.1``... (raises if a part is not a BPF link)."""
        for i, lk in enumerate(self.links):
            lk.pin(f"{os.fspath(path)}.{i}")


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    return int(obj.fileno())


__all__ = ["Link", "MultiLink", "LinkError", "Cleanup"]
