"""``corebpf.Program``: load instructions into the kernel and use the result.

Loading follows the verifier-log strategy of the mature loaders: load with the log off (fast, and
no buffer to size); only when that fails, load again with a log, growing the buffer while the
kernel answers ENOSPC (to ``log_true_size`` when the kernel reports it). A rejection with a log
becomes :class:`~corebpf.errors.VerifierError`; anything else a typed BPFError with a hint.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any, Iterable, Optional, Union

from .._sys import _generated as g
from .._sys import ops
from .._sys._generated import AttachType, ProgType
from .._sys.fd import FD
from .._sys.handle import Handle
from .._sys.hints import hint_for, lockdown_mode
from ..errors import BPFError, VerifierError, error_class
from .info import ProgramInfo, program_info, raw_prog_info
from .stats import RunStats
from .test_run import TestRunResult, test_run
from .verifier_log import summarize

INSN_SIZE = 8
LOG_LEVEL_BRANCH = 1
LOG_LEVEL_INSN = 2
LOG_LEVEL_STATS = 4
DEFAULT_LOG_SIZE = 64 * 1024
LOG_SIZE_CAP = 128 * 1024 * 1024
"""The most log corebpf asks for automatically (the kernel allows up to 1 GiB)."""
_KERNEL_LOG_MAX = (2**32 - 1) >> 2

_TRAMPOLINE_TYPES = (ProgType.TRACING, ProgType.LSM, ProgType.EXT, ProgType.STRUCT_OPS)

Instructions = Union[bytes, bytearray, memoryview, Iterable[Any]]


def parse_prog_type(value: "ProgType | int | str") -> ProgType:
    """A :class:`ProgType` from the enum, its number or name (``"xdp"``, ``"socket_filter"``)."""
    return _parse_enum(ProgType, value, "BPF_PROG_TYPE_", "program type")


def parse_attach_type(value: "AttachType | int | str") -> AttachType:
    """An :class:`AttachType` from the enum, its number or name (``"cgroup_inet_ingress"``)."""
    return _parse_enum(AttachType, value, "BPF_", "attach type")


def _parse_enum(enum_cls: Any, value: Any, prefix: str, what: str) -> Any:
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key.startswith(prefix):
            key = key[len(prefix):]
        try:
            return enum_cls[key]
        except KeyError:
            raise ValueError(f"unknown {what} {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return enum_cls(value)
        except ValueError:
            raise ValueError(f"unknown {what} number {value}") from None
    raise TypeError(f"{what} must be an enum member, int or str, not {type(value).__name__}")


def encode_instructions(instructions: Instructions) -> bytes:
    """Raw instruction bytes from bytes, or from instruction objects (via ``corebpf.asm.encode`` when
    available, else each object's ``encode()`` or ``bytes()``)."""
    if isinstance(instructions, (bytes, bytearray, memoryview)):
        raw = bytes(instructions)
    else:
        items = list(instructions)
        try:
            from .. import asm
        except ImportError:  # pragma: no cover - corebpf.asm is part of the package
            asm = None  # type: ignore[assignment]
        if asm is not None and all(isinstance(i, (asm.Instruction, asm.builder.Label, asm.builder.PendingJump))
                                   for i in items):
            if not all(isinstance(i, asm.Instruction) for i in items):
                items = asm.builder.assemble(items)  # resolve labels into offsets
            raw = bytes(asm.encode(items))
        else:
            parts = []
            for insn in items:
                if isinstance(insn, (bytes, bytearray, memoryview)):
                    parts.append(bytes(insn))
                elif hasattr(insn, "encode"):
                    parts.append(bytes(insn.encode()))
                else:
                    parts.append(bytes(insn))
            raw = b"".join(parts)
    if not raw:
        raise ValueError("a program needs at least one instruction")
    if len(raw) % INSN_SIZE:
        raise ValueError(f"instruction bytes must be a multiple of 8, got {len(raw)}")
    return raw


def _records(data: Any, rec_type: type) -> tuple[Any, int, int]:
    """(buffer, record size, count) of func_info/line_info given as bytes or ctypes records."""
    if data is None:
        return None, 0, 0
    size = ctypes.sizeof(rec_type)
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    elif isinstance(data, ctypes.Array):
        raw = bytes(data)
    else:
        raw = b"".join(bytes(r) for r in data)
    if len(raw) % size:
        raise ValueError(f"{rec_type.__name__} records are {size} bytes each; got {len(raw)} bytes")
    return raw, size, len(raw) // size


class Program(Handle):
    """A BPF program loaded in the kernel and owned by this process (through an fd)."""

    _KIND = "prog"
    _NOUN = "program"

    def __init__(self, fd: FD, info: ProgramInfo, verifier_log: str = "") -> None:
        """Wrap an owned program fd (use :meth:`load` or the ``from_*`` class methods)."""
        self._fd = fd
        self.id: int = info.id
        self.name: str = info.name
        self.type: ProgType | int = info.type
        self.tag: str = info.tag
        self.verifier_log: str = verifier_log
        """The verifier log of a load with ``log_level`` set (empty otherwise)."""

    # ---- loading -----------------------------------------------------------------------------

    @classmethod
    def load(cls, instructions: Instructions, prog_type: "ProgType | int | str", license: str = "GPL", *,
             name: str = "", expected_attach_type: "AttachType | int | str | None" = None,
             attach_btf_id: int = 0, attach_btf_obj_fd: Any = None, attach_prog_fd: Any = None,
             kern_version: int = 0, flags: int = 0, btf: Any = None, func_info: Any = None,
             line_info: Any = None, fd_array: "Iterable[int] | None" = None, ifindex: int = 0,
             log_level: Optional[int] = None, log_size: Optional[int] = None) -> "Program":
        """Load ``instructions`` (bytes or instruction objects) as a program of ``prog_type``.

        ``log_level`` None (default) loads with the log off and fetches a log only on failure; an
        explicit level keeps the log of a successful load in :attr:`verifier_log`. ``log_size`` is
        the first log buffer size (it grows on ENOSPC up to :data:`LOG_SIZE_CAP`). Raises
        :class:`~corebpf.errors.VerifierError` when the verifier rejects the program.
        """
        ptype = parse_prog_type(prog_type)
        raw = encode_instructions(instructions)
        lic = license.encode() + b"\0"
        fi, fi_size, fi_cnt = _records(func_info, g.FuncInfo)
        li, li_size, li_cnt = _records(line_info, g.LineInfo)
        fd_list = [int(f) for f in fd_array] if fd_array is not None else None
        fds = (ctypes.c_int32 * len(fd_list))(*fd_list) if fd_list else None
        attr = g.ProgLoadAttr(prog_type=ptype, insn_cnt=len(raw) // INSN_SIZE, insns=ops.addr(raw),
                              license=ops.addr(lic), kern_version=kern_version, prog_flags=flags,
                              prog_ifindex=ifindex, attach_btf_id=attach_btf_id,
                              prog_btf_fd=_fileno(btf) if btf is not None else 0,
                              func_info_rec_size=fi_size, func_info=ops.addr(fi), func_info_cnt=fi_cnt,
                              line_info_rec_size=li_size, line_info=ops.addr(li), line_info_cnt=li_cnt,
                              fd_array=ops.addr(fds) if fds is not None else 0,
                              fd_array_cnt=0)
        attr.prog_name = ops.name_bytes(name)
        if expected_attach_type is not None:
            attr.expected_attach_type = parse_attach_type(expected_attach_type)
        if attach_prog_fd is not None:
            attr.attach_prog_fd = _fileno(attach_prog_fd)
        elif attach_btf_obj_fd is not None:
            attr.attach_btf_obj_fd = _fileno(attach_btf_obj_fd)

        if log_level is None:
            ret = ops.prog_load(attr, detail=name)
            if ret >= 0:
                return cls._from_owned_fd(FD(ret))
            first_err = -ret
            ret, log, truncated = _load_with_log(attr, LOG_LEVEL_BRANCH, log_size or DEFAULT_LOG_SIZE)
            if ret >= 0:  # passed on the second try (e.g. transient memory pressure)
                return cls._from_owned_fd(FD(ret))
            raise _load_error(first_err, log, truncated, ptype, name)
        ret, log, truncated = _load_with_log(attr, log_level, log_size or DEFAULT_LOG_SIZE)
        if ret < 0:
            raise _load_error(-ret, log, truncated, ptype, name)
        return cls._from_owned_fd(FD(ret), log)

    @classmethod
    def _from_owned_fd(cls, fd: FD, log: str = "") -> "Program":
        try:
            return cls(fd, program_info(fd.fileno()), log)
        except BaseException:
            fd.close()
            raise

    # ---- lifetime: fd, fileno, closed, close, pin and the context manager come from Handle --------

    def __repr__(self) -> str:
        tname = self.type.name.lower() if isinstance(self.type, ProgType) else str(self.type)
        state = "closed" if self.closed else f"fd={self._fd.fileno()}"
        return f"<Program {tname} id={self.id} name={self.name!r} tag={self.tag} {state}>"

    # ---- facts -------------------------------------------------------------------------------

    @property
    def info(self) -> ProgramInfo:
        """Fresh :class:`ProgramInfo` from the kernel."""
        return program_info(self.fileno())

    def stats(self) -> RunStats:
        """Run time and run count so far (counted only while stats are enabled)."""
        raw = raw_prog_info(self.fileno())
        return RunStats(run_time_ns=raw.run_time_ns, run_cnt=raw.run_cnt, recursion_misses=raw.recursion_misses)

    @property
    def run_time_ns(self) -> int:
        """Total run time in ns (while stats were enabled)."""
        return self.stats().run_time_ns

    @property
    def run_cnt(self) -> int:
        """Number of runs (while stats were enabled)."""
        return self.stats().run_cnt

    # ---- running -----------------------------------------------------------------------------

    def attach(self, kind: Optional[str] = None, *args: Any, **targets: Any) -> Any:
        """Attach this program and return the :class:`corebpf.Link` (detached on close).

        ``prog.attach("tracepoint", "syscalls/sys_enter_getpgid")`` calls the named attach function
        of :mod:`corebpf.links` with this program; without ``kind`` the program's ELF section (set
        when it came from an object) decides, as :func:`corebpf.links.attach_program` does.
        """
        from .. import links

        if kind is None:
            section = getattr(self, "section", None)
            if not section:
                raise ValueError("this program has no section to attach by: name the kind, "
                                 "e.g. prog.attach('raw_tracepoint', 'sys_enter')")
            return links.attach_program(self, section, **targets)
        attach_fn = getattr(links, kind, None)
        if attach_fn is None or kind.startswith("_") or not callable(attach_fn):
            raise ValueError(f"unknown attach kind {kind!r}: see corebpf.links (tracepoint, raw_tracepoint, "
                             f"kprobe, uprobe, xdp, tc, cgroup, ...)")
        return attach_fn(self, *args, **targets)

    def test_run(self, data: "bytes | bytearray | memoryview" = b"", repeat: int = 1,
                 ctx: "bytes | bytearray | memoryview | None" = None, data_size_out: Optional[int] = None,
                 flags: int = 0, *, ctx_size_out: Optional[int] = None, cpu: int = 0,
                 batch_size: int = 0) -> TestRunResult:
        """Run the program in the kernel on ``data`` (and ``ctx``) ``repeat`` times (BPF_PROG_TEST_RUN)."""
        tname = self.type.name if isinstance(self.type, ProgType) else None
        return test_run(self.fileno(), data, repeat, ctx, data_size_out, ctx_size_out, flags, cpu, batch_size,
                        prog_type=tname)


def _load_with_log(attr: g.ProgLoadAttr, level: int, size: int) -> tuple[int, str, bool]:
    """Load with a verifier log, growing the buffer on ENOSPC; returns (fd or -errno, log, truncated)."""
    size = max(128, min(size, _KERNEL_LOG_MAX))
    while True:
        buf = ctypes.create_string_buffer(size)
        attr.log_level = level
        attr.log_size = size
        attr.log_buf = ctypes.addressof(buf)
        attr.log_true_size = 0
        ret = ops.prog_load(attr)
        log = buf.value.decode(errors="replace")
        if ret == -errno.ENOSPC and size < LOG_SIZE_CAP:
            want = attr.log_true_size  # 6.4+: the full size the log needs, NUL included
            size = min(LOG_SIZE_CAP, want if want > size else size * 4)
            continue
        attr.log_level, attr.log_size, attr.log_buf = 0, 0, 0
        return ret, log, ret == -errno.ENOSPC


def _load_error(err: int, log: str, truncated: bool, ptype: ProgType, name: str) -> BPFError:
    """The error to raise for a failed load: VerifierError when the kernel explained itself in the log."""
    hint = hint_for(err, "BPF_PROG_LOAD", ptype.name)
    if err in (errno.EPERM, errno.EACCES) and ptype in _TRAMPOLINE_TYPES and "missing capability" not in hint:
        mode = lockdown_mode()
        policy = f"lockdown '{mode}', an LSM" if mode and mode != "none" else "an LSM"
        hint = (f"{ptype.name.lower()} programs (fentry/fexit/fmod_ret/LSM/freplace) need BPF trampolines, and "
                f"this kernel refused one although the capabilities are there: kernel policy ({policy}) or a kernel "
                f"without trampoline support; attach with tp_btf, raw_tp, a tracepoint or a kprobe instead "
                f"('corebpf doctor' shows which of them work here)")
    if log.strip():
        summary = summarize(log)
        text = str(summary)
        if name:
            text = f"{name}: {text}"
        if truncated:
            text += " (log truncated)"
        error = VerifierError(err, "BPF_PROG_LOAD", text, log, hint if err == errno.EPERM else "")
        error.insn_index = summary.insn_index  # type: ignore[attr-defined]
        return error
    return error_class(err)(err, "BPF_PROG_LOAD", hint, f"{ptype.name.lower()} program {name!r}" if name
                            else f"{ptype.name.lower()} program")


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        return obj
    if hasattr(obj, "fileno"):
        return int(obj.fileno())
    raise TypeError(f"expected an fd or an object with fileno(), not {type(obj).__name__}")


__all__ = ["Program", "ProgType", "AttachType", "TestRunResult", "encode_instructions", "parse_prog_type",
           "parse_attach_type", "LOG_LEVEL_BRANCH", "LOG_LEVEL_INSN", "LOG_LEVEL_STATS", "LOG_SIZE_CAP"]
