"""``kprobe.multi``: one BPF link on many kernel functions (fprobe; Linux >= 5.18)."""

from __future__ import annotations

import ctypes
import fnmatch
import os
from typing import Any, Optional, Sequence, Union

from .._sys import ops
from .._sys._generated import AttachType
from ..errors import CoreBPFError
from ._ksyms import check_kernel_function, kernel_functions
from ._matches import close_matches
from .kprobe import kprobe
from .link import Link, MultiLink, _fileno
from .planb import Method, TargetNotFoundError, first_working

KPROBE_MULTI_RETURN = 1


def traceable_functions() -> list[str]:
    """Functions that can be probed (``available_filter_functions``; kallsyms text symbols when absent)."""
    from ._tracefs import tracefs

    try:
        path = os.path.join(tracefs(), "available_filter_functions")
        with open(path) as f:
            return [ln.split()[0] for ln in f if ln.strip()]
    except (OSError, CoreBPFError):
        return sorted(kernel_functions())


def match_functions(pattern: str) -> list[str]:
    """Traceable functions matching glob ``pattern`` (``"tcp_*"``), sorted and unique."""
    return sorted({f for f in traceable_functions() if fnmatch.fnmatchcase(f, pattern)})


def kprobe_multi(program: Any, functions: Union[str, Sequence[str]], *, retprobe: bool = False,
                 cookies: Optional[Sequence[int]] = None, session: bool = False, method: Optional[str] = None) -> Link:
    """Attach a ``kprobe.multi`` program (loaded with expected attach type ``TRACE_KPROBE_MULTI``) to
    ``functions``: a list of names or one glob pattern. ``session`` uses ``TRACE_KPROBE_SESSION``.

    Plan B (``method="per_function"``): one :func:`~corebpf.links.kprobe` per function, for a program
    loaded as a plain kprobe (the kernel keeps multi-kprobe programs off single probes).
    """
    if isinstance(functions, str):
        names = match_functions(functions) if any(c in functions for c in "*?[") else [functions]
        if not names:
            raise TargetNotFoundError("kernel functions matching", functions,
                                      close_matches(functions.strip("*?"), traceable_functions()),
                                      "available_filter_functions")
    else:
        names = list(functions)
    for n in names:
        check_kernel_function(n)
    if cookies is not None and len(cookies) != len(names):
        raise ValueError(f"{len(cookies)} cookies for {len(names)} functions")
    raw = [ctypes.create_string_buffer(n.encode()) for n in names]
    syms = (ctypes.c_uint64 * len(raw))(*[ctypes.addressof(b) for b in raw])
    cks = (ctypes.c_uint64 * len(names))(*cookies) if cookies else None
    eat = AttachType.TRACE_KPROBE_SESSION if session else AttachType.TRACE_KPROBE_MULTI
    target = f"kprobe.multi {len(names)} functions ({', '.join(names[:3])}{'...' if len(names) > 3 else ''})"

    def multi() -> Link:
        fd = ops.link_create(_fileno(program), 0, eat, kprobe_multi__flags=KPROBE_MULTI_RETURN if retprobe else 0,
                             kprobe_multi__cnt=len(names), kprobe_multi__syms=ctypes.addressof(syms),
                             kprobe_multi__cookies=ctypes.addressof(cks) if cks is not None else 0)
        return Link(target, "bpf_link", fd)

    def one_by_one() -> Link:
        if session:
            raise CoreBPFError("kprobe.session has no per-function equivalent")
        links: list[Link] = []
        try:
            for i, fn in enumerate(names):
                links.append(kprobe(program, fn, retprobe=retprobe, cookie=cookies[i] if cookies else 0))
        except BaseException:
            for lk in links:
                lk.close()
            raise
        return MultiLink(target, "kprobe_per_function(" + "/".join(sorted({lk.method for lk in links})) + ")", links)

    return first_working(target, [Method("kprobe_multi", multi, "kprobe_multi"), Method("per_function", one_by_one)],
                         force=method, hint="kprobe.multi needs Linux >= 5.18 with CONFIG_FPROBE; one kprobe per "
                         "function needs a program loaded without expected attach type TRACE_KPROBE_MULTI")


__all__ = ["kprobe_multi", "match_functions", "traceable_functions", "KPROBE_MULTI_RETURN"]
