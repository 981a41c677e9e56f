"""corebpf's exception hierarchy.

Every error corebpf raises on purpose derives from :class:`CoreBPFError`, so callers can catch
corebpf's failures without catching programming errors. Errors coming from a kernel call are
:class:`BPFError` (also an :class:`OSError`, so ``errno`` works as usual) and carry the command
that failed and a hint that says what to do about it.
"""

from __future__ import annotations

import errno as _errno
import os

# Kernel-internal errno values that leak to user space from bpf().
ENOTSUPP = 524


class CoreBPFError(Exception):
    """Base class of every error corebpf raises on purpose."""


class BPFError(CoreBPFError, OSError):
    """A ``bpf()`` or ``perf_event_open()`` call failed.

    Attributes:
        errno: the errno the kernel returned.
        command: the command that failed, e.g. ``"BPF_MAP_CREATE"``.
        hint: what usually causes this and what to do (may be empty).
    """

    def __init__(self, err: int, command: str, hint: str = "", detail: str = "") -> None:
        self.command = command
        self.hint = hint
        self.detail = detail
        name = _errno.errorcode.get(err, "ENOTSUPP" if err == ENOTSUPP else f"errno {err}")
        reason = "operation not supported" if err == ENOTSUPP else os.strerror(err)
        message = f"{command}: {detail + ': ' if detail else ''}{reason} ({name})"
        if hint:
            message += f"; {hint}"
        OSError.__init__(self, err, message)

    def __str__(self) -> str:
        return str(self.args[1])

    def __reduce__(self):  # keep the subclass and fields when pickled
        return (_rebuild, (type(self), self.errno, self.command, self.hint, self.detail))


def _rebuild(cls: type, err: int, command: str, hint: str, detail: str) -> "BPFError":
    return cls(err, command, hint, detail)


class BPFPermissionError(BPFError, PermissionError):
    """EPERM/EACCES: a capability, lockdown or a sysctl is in the way."""


class BPFNotFoundError(BPFError, FileNotFoundError):
    """ENOENT: no such element, object, id or path."""


class BPFExistsError(BPFError, FileExistsError):
    """EEXIST: the key or pin already exists."""


class BPFNotSupportedError(BPFError):
    """EOPNOTSUPP/ENOTSUPP: this kernel lacks the feature."""


class BPFInvalidArgumentError(BPFError):
    """EINVAL: the kernel rejected an argument (often: the kernel is too old for a flag or field)."""


class BPFTooBigError(BPFError):
    """E2BIG: too many entries, or attr fields the kernel does not know are set."""


class BPFBusyError(BPFError):
    """EBUSY: the hook or object is in use."""


class BPFNoSpaceError(BPFError):
    """ENOSPC: a buffer (e.g. the verifier log) was too small, or the map is full."""


_BY_ERRNO: dict[int, type[BPFError]] = {
    _errno.EPERM: BPFPermissionError,
    _errno.EACCES: BPFPermissionError,
    _errno.ENOENT: BPFNotFoundError,
    _errno.EEXIST: BPFExistsError,
    _errno.EOPNOTSUPP: BPFNotSupportedError,
    ENOTSUPP: BPFNotSupportedError,
    _errno.EINVAL: BPFInvalidArgumentError,
    _errno.E2BIG: BPFTooBigError,
    _errno.EBUSY: BPFBusyError,
    _errno.ENOSPC: BPFNoSpaceError,
}


def error_class(err: int) -> type[BPFError]:
    """The :class:`BPFError` subclass for an errno."""
    return _BY_ERRNO.get(err, BPFError)


class VerifierError(BPFError):
    """The verifier rejected a program.

    ``str(err)`` is the line or two that matter (the failing instruction and the reason);
    ``err.log`` is the full verifier log.
    """

    def __init__(self, err: int, command: str, summary: str, log: str, hint: str = "") -> None:
        self.summary = summary
        self.log = log
        super().__init__(err, command, hint, detail=f"verifier rejected the program: {summary}")

    def __reduce__(self):
        return (VerifierError, (self.errno, self.command, self.summary, self.log, self.hint))


class InstructionError(CoreBPFError, ValueError):
    """Bytes or fields that are not a valid eBPF instruction."""


class BTFError(CoreBPFError, ValueError):
    """Malformed or unsupported BTF. The message names the offset where it went wrong."""


class ELFError(CoreBPFError, ValueError):
    """Malformed or unsupported ELF object."""


class NodeError(CoreBPFError):
    """A fact about this host could not be read or a filesystem could not be mounted."""
