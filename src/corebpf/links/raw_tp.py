"""Raw tracepoints (``SEC("raw_tp/<name>")``): the tracepoint's raw arguments, no perf event."""

from __future__ import annotations

import errno
from typing import Any

from .._sys import ops
from ..errors import BPFError
from ._matches import close_matches
from .link import Link, _fileno
from .planb import TargetNotFoundError


def raw_tracepoint_names() -> list[str]:
    """Names raw tracepoints can attach to: the kernel's ``btf_trace_<name>`` typedefs (from vmlinux BTF),
    else the tracefs event names."""
    names: list[str] = []
    try:
        from .tracing import btf_names

        names = [n[len("btf_trace_"):] for n in btf_names() if n.startswith("btf_trace_")]
    except Exception:  # no BTF: fall back to tracefs
        names = []
    if not names:
        from ._tracefs import list_events

        names = [e.split("/", 1)[1] for e in list_events()]
    return sorted(set(names))


def raw_tracepoint(program: Any, name: str, *, cookie: int = 0) -> Link:
    """Attach a ``raw_tracepoint`` (or ``raw_tracepoint.w``) program to tracepoint ``name`` (``"sys_enter"``)."""
    try:
        fd = ops.raw_tracepoint_open(name, _fileno(program), cookie)
    except BPFError as exc:
        if exc.errno == errno.ENOENT:
            raise TargetNotFoundError("raw tracepoint", name, close_matches(name, raw_tracepoint_names()),
                                      "the kernel's tracepoints") from None
        raise
    return Link(f"raw_tracepoint {name}", "bpf_link", fd)


__all__ = ["raw_tracepoint", "raw_tracepoint_names"]
