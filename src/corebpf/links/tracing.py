"""BTF-typed tracing: ``tp_btf``, ``fentry``/``fexit``/``fmod_ret``, ``lsm`` (and ``freplace``).

These programs name their target at load time (``attach_btf_id``); attaching is one
``BPF_RAW_TRACEPOINT_OPEN`` (or ``BPF_LINK_CREATE`` when a cookie is given). fentry/fexit/fmod_ret/LSM
need BPF trampolines, which kernels under lockdown refuse at load: :func:`load` says so, and
:mod:`corebpf.links.planb` can fall back to a kprobe or tracepoint program the caller supplies.
"""

from __future__ import annotations

import errno
import functools
from typing import Any, Optional

from .._sys import ops
from .._sys._generated import AttachType, ProgType
from ..errors import BPFError, error_class
from ._matches import close_matches
from .link import Link, _fileno
from .planb import TargetNotFoundError

# kind -> (program type, expected attach type, BTF kind name, BTF name prefix)
KINDS: dict[str, tuple[ProgType, AttachType, str, str]] = {
    "tp_btf": (ProgType.TRACING, AttachType.TRACE_RAW_TP, "TYPEDEF", "btf_trace_"),
    "fentry": (ProgType.TRACING, AttachType.TRACE_FENTRY, "FUNC", ""),
    "fexit": (ProgType.TRACING, AttachType.TRACE_FEXIT, "FUNC", ""),
    "fmod_ret": (ProgType.TRACING, AttachType.MODIFY_RETURN, "FUNC", ""),
    "lsm": (ProgType.LSM, AttachType.LSM_MAC, "FUNC", "bpf_lsm_"),
    "iter": (ProgType.TRACING, AttachType.TRACE_ITER, "FUNC", "bpf_iter_"),
}


@functools.lru_cache(maxsize=None)
def _names_of_kind(kind_name: str) -> tuple[str, ...]:
    from ..btf import BTF
    from ..btf.types import Kind

    btf = BTF.vmlinux()
    kind = Kind[kind_name]
    return tuple(btf.name_of(i) for i in range(1, len(btf) + 1) if btf.kind_of(i) == kind)


def btf_names() -> tuple[str, ...]:
    """Every typedef name of vmlinux BTF (``btf_trace_*`` are the raw tracepoints); cached."""
    return _names_of_kind("TYPEDEF")


def btf_target(kind: str, target: str) -> int:
    """The vmlinux BTF id a ``kind`` program (``"fentry"``, ``"tp_btf"``, ``"lsm"``...) attaches to for ``target``
    (a function, tracepoint or LSM hook name without prefix). Raises :class:`TargetNotFoundError` with
    close matches."""
    from ..btf import BTF
    from ..btf.types import Kind

    if kind not in KINDS:
        raise ValueError(f"unknown tracing kind {kind!r}; known: {', '.join(KINDS)}")
    _, _, kind_name, prefix = KINDS[kind]
    target = target.removeprefix(prefix)
    tid = BTF.vmlinux().find_id(prefix + target, Kind[kind_name])
    if tid < 0:
        pool = [n[len(prefix):] for n in _names_of_kind(kind_name) if n.startswith(prefix)]
        raise TargetNotFoundError(f"{kind} target", target, close_matches(target, pool), "vmlinux BTF")
    return tid


def load(instructions: Any, kind: str, target: str, license: str = "GPL", **kwargs: Any) -> Any:
    """Load ``instructions`` as a ``kind`` program on ``target`` (resolving its BTF id).

    Under lockdown, fentry/fexit/fmod_ret/LSM raise a :class:`~corebpf.errors.BPFPermissionError`
    whose hint says to fall back (see :func:`corebpf.links.fallback`).
    """
    from ..programs import Program

    ptype, eat, _, _ = KINDS[kind]
    return Program.load(instructions, ptype, license, expected_attach_type=eat,
                        attach_btf_id=btf_target(kind, target), **kwargs)


def tracing(program: Any, *, cookie: int = 0, attach_type: "AttachType | None" = None) -> Link:
    """Attach a loaded tp_btf/fentry/fexit/fmod_ret/LSM/freplace program to the target it was loaded for.

    A ``cookie`` needs ``attach_type`` (the program's expected attach type) and Linux >= 5.19.
    """
    fd = _fileno(program)
    name = getattr(program, "name", "") or f"fd {fd}"
    try:
        if cookie:
            if attach_type is None:
                raise ValueError("a cookie needs attach_type (e.g. AttachType.TRACE_FENTRY)")
            lfd = ops.link_create(fd, 0, attach_type, tracing__cookie=cookie)
        else:
            lfd = ops.raw_tracepoint_open(None, fd)
    except BPFError as exc:
        if exc.errno == errno.EINVAL and getattr(program, "type", None) not in (ProgType.TRACING, ProgType.LSM,
                                                                                 ProgType.EXT, None):
            raise error_class(exc.errno or 0)(exc.errno or 0, exc.command, f"program {name!r} is not a tracing/LSM program: "
                           "use the attach function of its type", exc.detail) from None
        raise
    return Link(f"tracing program {name}", "bpf_link", lfd)


def tp_btf(program: Any, *, cookie: int = 0) -> Link:
    """Attach a ``tp_btf`` program (its tracepoint was chosen at load)."""
    return tracing(program, cookie=cookie, attach_type=AttachType.TRACE_RAW_TP if cookie else None)


def fentry(program: Any, *, cookie: int = 0) -> Link:
    """Attach an ``fentry`` program."""
    return tracing(program, cookie=cookie, attach_type=AttachType.TRACE_FENTRY if cookie else None)


def fexit(program: Any, *, cookie: int = 0) -> Link:
    """Attach an ``fexit`` program."""
    return tracing(program, cookie=cookie, attach_type=AttachType.TRACE_FEXIT if cookie else None)


def fmod_ret(program: Any, *, cookie: int = 0) -> Link:
    """Attach an ``fmod_ret`` program."""
    return tracing(program, cookie=cookie, attach_type=AttachType.MODIFY_RETURN if cookie else None)


def lsm(program: Any, *, cookie: int = 0) -> Link:
    """Attach an ``lsm`` program (needs ``bpf`` in the kernel's active LSM list)."""
    try:
        return tracing(program, cookie=cookie, attach_type=AttachType.LSM_MAC if cookie else None)
    except BPFError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            raise error_class(exc.errno or 0)(exc.errno or 0, exc.command, "is 'bpf' in the active LSM list (lsm= boot option, "
                           "/sys/kernel/security/lsm)?", exc.detail) from None
        raise


def freplace(program: Any, target_program: Optional[Any] = None, btf_id: int = 0) -> Link:
    """Attach an ``freplace`` (EXT) program; with ``target_program`` and ``btf_id`` replace another
    function than the one given at load."""
    if target_program is None:
        return tracing(program)
    lfd = ops.link_create(_fileno(program), _fileno(target_program), AttachType.TRACE_FREPLACE,
                          target_btf_id=btf_id)
    return Link(f"freplace of prog fd {_fileno(target_program)}", "bpf_link", lfd)


__all__ = ["KINDS", "btf_target", "btf_names", "load", "tracing", "tp_btf", "fentry", "fexit", "fmod_ret", "lsm",
           "freplace"]
