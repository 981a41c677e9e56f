"""Private backend: the bpf() and perf_event_open() system calls and the kernel's UAPI layouts.

Nothing here is public API; the public classes (``corebpf.Map``, ``corebpf.Program``...) are
built on it. Layouts and enums come from ``_generated.py`` (see ``tools/gen_sys.py``).
"""

from . import _generated as uapi
from ._generated import AttachType, Cmd, HelperId, LinkType, MapType, ProgType
from .fd import FD
from .syscall import bpf, bpf_raw, bpf_syscall_works, make_error, perf_event_open

__all__ = ["uapi", "AttachType", "Cmd", "HelperId", "LinkType", "MapType", "ProgType", "FD", "bpf", "bpf_raw",
           "bpf_syscall_works", "make_error", "perf_event_open"]
