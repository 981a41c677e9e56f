"""The probe result record and the program loader every probe shares.

A probe is one or a few system calls that try the real thing (load a tiny program, create a tiny
map, attach a link). Its outcome is a :class:`ProbeResult`: supported or not, the errno, and a short
reason a user can act on.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ENOTSUPP
from .._sys import _generated as g
from .._sys.ops import prog_load

LICENSE = ctypes.create_string_buffer(b"GPL")


def errno_name(err: Optional[int]) -> Optional[str]:
    """``1`` -> ``"EPERM"``; 524 -> ``"ENOTSUPP"``; None stays None."""
    if err is None:
        return None
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"errno {err}")


@dataclass(frozen=True)
class ProbeResult:
    """Whether one feature works here.

    ``errno`` is None on success. ``source`` is ``"probe"`` when a system call was tried, or names the
    evidence used when trying was not possible (``"kconfig"``, a sysfs path) or ``"not probed"``.
    ``detail`` holds the verifier line or extra evidence when there is one.
    """

    name: str
    supported: bool
    errno: Optional[int]
    reason: str
    source: str = "probe"
    detail: str = ""

    @property
    def errno_name(self) -> Optional[str]:
        """The symbolic errno (``"EPERM"``), None on success."""
        return errno_name(self.errno)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"name": self.name, "supported": self.supported, "errno": self.errno, "errno_name": self.errno_name,
                "reason": self.reason, "source": self.source, "detail": self.detail}


def ok(name: str, reason: str = "works", detail: str = "") -> ProbeResult:
    """A successful probe."""
    return ProbeResult(name, True, None, reason, "probe", detail)


def failed(name: str, err: int, reason: str, detail: str = "", source: str = "probe") -> ProbeResult:
    """A failed probe with its errno."""
    return ProbeResult(name, False, err, reason, source, detail)


def last_log_line(log: str) -> str:
    """The verifier's verdict: the last log line that is not the 'processed N insns' statistics."""
    lines = [ln for ln in log.strip().splitlines() if ln and not ln.startswith(("processed ", "verification time"))]
    return lines[-1] if lines else ""


class ProgLoader:
    """Loads tiny programs for probes, reusing one log buffer (not thread-safe: one per thread)."""

    def __init__(self, log_size: int = 8192) -> None:
        self.log = ctypes.create_string_buffer(log_size)
        self.log_size = log_size

    def load(self, prog_type: int, insns: bytes, *, expected_attach_type: int = 0, attach_btf_id: int = 0,
             attach_prog_fd: int = 0, prog_flags: int = 0, kern_version: int = 0, log: bool = True,
             prog_btf_fd: int = 0, func_info: bytes = b"", fd_array: int = 0) -> tuple[int, str]:
        """Load and return ``(fd or -errno, verifier log)``; the caller closes a returned fd."""
        buf = ctypes.create_string_buffer(insns, len(insns))
        attr = g.ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ctypes.addressof(buf),
                              license=ctypes.addressof(LICENSE), kern_version=kern_version, prog_flags=prog_flags,
                              expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id,
                              prog_btf_fd=prog_btf_fd, fd_array=fd_array)
        attr.attach_prog_fd = attach_prog_fd
        fi = None
        if func_info:
            fi = ctypes.create_string_buffer(func_info, len(func_info))
            attr.func_info = ctypes.addressof(fi)
            attr.func_info_rec_size = 8
            attr.func_info_cnt = len(func_info) // 8
        if log:
            self.log[0] = b"\0"
            attr.log_level = 1
            attr.log_size = self.log_size
            attr.log_buf = ctypes.addressof(self.log)
        ret = prog_load(attr)
        if ret == -_errno.ENOSPC and log:  # log too small only matters on success paths: retry quietly
            attr.log_level = attr.log_size = attr.log_buf = 0
            ret = prog_load(attr)
        text = self.log.value.decode(errors="replace") if log else ""
        return ret, text


def close(fd: int) -> None:
    """Close a probe's fd (ignores errors: probes must not raise)."""
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def kernel_version_code() -> int:
    """``LINUX_VERSION_CODE`` of the running kernel (kprobe programs needed it before 5.0)."""
    from ..node.kernel import parse_release

    a, b, c = parse_release(os.uname().release)
    return (a << 16) + (b << 8) + min(c, 255)
