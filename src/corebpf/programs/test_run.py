"""``BPF_PROG_TEST_RUN``: run a loaded program on given input, in the kernel, without attaching it."""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass
from typing import Optional

from .._sys import _generated as g
from .._sys._generated import Cmd
from .._sys.ops import addr
from .._sys.syscall import bpf_raw, make_error
from ..errors import ENOTSUPP, BPFError, error_class

# XDP may grow a packet at both ends (headroom + tailroom); leave room for that by default.
_DEFAULT_GROWTH = 512
_MAX_RETRIES = 4
# Types whose test run copies no context back (the kernel refuses a ctx_out buffer for them).
_NO_CTX_OUT = {"RAW_TRACEPOINT", "TRACING", "SYSCALL", "STRUCT_OPS", "LSM"}


@dataclass(frozen=True)
class TestRunResult:
    """What one test run produced."""

    __test__ = False  # not a pytest test class, despite the name

    return_value: int
    """The program's return value (``retval``; e.g. an XDP action, a filter's byte count)."""
    data_out: bytes
    """The packet after the program ran (empty for types without packet data)."""
    duration_ns: int
    """Average run time per repetition, in nanoseconds, as the kernel measured it."""
    ctx_out: Optional[bytes] = None
    """The context after the run, when a context was given."""


def _buffer(data: "bytes | bytearray | memoryview | None") -> Optional[bytes]:
    if data is None:
        return None
    return bytes(data)


def test_run(prog_fd: int, data: "bytes | bytearray | memoryview" = b"", repeat: int = 1,
             ctx: "bytes | bytearray | memoryview | None" = None, data_size_out: Optional[int] = None,
             ctx_size_out: Optional[int] = None, flags: int = 0, cpu: int = 0, batch_size: int = 0,
             prog_type: Optional[str] = None) -> TestRunResult:
    """Run the program ``repeat`` times on ``data`` (and ``ctx``); output buffers grow as needed."""
    if repeat < 0:
        raise ValueError(f"repeat must be >= 0, got {repeat}")
    data_in = _buffer(data) or None
    ctx_in = _buffer(ctx) if ctx is not None else None
    out_size = data_size_out if data_size_out is not None else (len(data_in) + _DEFAULT_GROWTH if data_in else 0)
    if ctx_size_out is not None:
        ctx_out_size = ctx_size_out
    else:
        ctx_out_size = len(ctx_in) if ctx_in and prog_type not in _NO_CTX_OUT else 0
    # The kernel runs once for repeat 0 or 1, and some types (raw_tp, tracing, syscall) insist on 0.
    kernel_repeat = repeat if repeat > 1 else 0
    for _ in range(_MAX_RETRIES):
        data_out = ctypes.create_string_buffer(out_size) if out_size else None
        ctx_out = ctypes.create_string_buffer(ctx_out_size) if ctx_out_size else None
        attr = g.ProgTestRunAttr(prog_fd=prog_fd, data_size_in=len(data_in) if data_in else 0,
                                 data_size_out=out_size, data_in=addr(data_in), data_out=addr(data_out),
                                 repeat=kernel_repeat, ctx_size_in=len(ctx_in) if ctx_in else 0,
                                 ctx_size_out=ctx_out_size, ctx_in=addr(ctx_in), ctx_out=addr(ctx_out),
                                 flags=flags, cpu=cpu, batch_size=batch_size)
        ret = bpf_raw(Cmd.PROG_TEST_RUN, attr)
        while ret == -errno.EINTR:
            ret = bpf_raw(Cmd.PROG_TEST_RUN, attr)
        if ret == -errno.ENOSPC and (attr.data_size_out > out_size or attr.ctx_size_out > ctx_out_size) \
                and data_size_out is None:
            # The kernel says how much output there was: make room and run again.
            out_size = max(out_size, attr.data_size_out)
            ctx_out_size = max(ctx_out_size, attr.ctx_size_out)
            continue
        if ret < 0:
            raise _explain(make_error(-ret, Cmd.PROG_TEST_RUN, prog_type=prog_type), -ret, prog_type)
        out = data_out.raw[: attr.data_size_out] if data_out is not None else b""
        cout = ctx_out.raw[: attr.ctx_size_out] if ctx_out is not None else None
        return TestRunResult(return_value=attr.retval, data_out=out, duration_ns=attr.duration, ctx_out=cout)
    raise make_error(errno.ENOSPC, Cmd.PROG_TEST_RUN, detail="output kept growing")


def _explain(err: BPFError, code: int, prog_type: Optional[str]) -> BPFError:
    if code in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
        what = f"{prog_type.lower()} programs" if prog_type else "this program type"
        hint = (f"check the input: {what} may not support test runs on this kernel, or need data of a "
                f"minimum size (e.g. 14 bytes of Ethernet header for skb/XDP programs) or a ctx of the right size")
        return error_class(code)(code, "BPF_PROG_TEST_RUN", hint)
    return err


__all__ = ["TestRunResult", "test_run"]
