"""Load one linked program: attach target BTF id, func/line info, then ``BPF_PROG_LOAD``.

BTF attach targets follow libbpf's naming: ``tp_btf/X`` is the typedef ``btf_trace_X``, ``lsm/X`` the
function ``bpf_lsm_X``, ``iter/X`` the function ``bpf_iter_X``, fentry/fexit/fmod_ret the function X;
vmlinux first, then module BTF (whose fd goes in ``attach_btf_obj_fd``). A verifier rejection caused by
a poisoned CO-RE relocation is explained with the relocation that failed.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from .._sys._generated import AttachType, ProgType
from ..btf.types import Kind
from ..errors import CoreBPFError, ELFError, VerifierError
from ..programs.program import Program

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.builder import LoadedBTF
    from ..btf.core import Resolution
    from ..elf.linker import LinkedProgram
    from ..elf.specs import ProgramSpec

__all__ = ["ProgramLoadError", "attach_btf_target", "check_loadable", "load_linked"]


class ProgramLoadError(CoreBPFError):
    """A program of the object cannot be prepared for loading (unknown type, missing attach target...)."""


def attach_btf_target(prog: "ProgramSpec", vmlinux: Optional["BTF"] = None) -> tuple[int, Optional[Any]]:
    """(BTF type id, module BTF fd or None) of the program's attach target."""
    from ..btf import BTF

    target = prog.attach_to
    if not target:
        raise ProgramLoadError(f"program {prog.name!r} (section {prog.section!r}) needs an attach target in its "
                               f"section name, e.g. SEC(\"{prog.section}/<function>\")")
    at = prog.expected_attach_type
    if at == AttachType.TRACE_RAW_TP:
        name, kind = "btf_trace_" + target, Kind.TYPEDEF
    elif at in (AttachType.LSM_MAC, AttachType.LSM_CGROUP):
        name, kind = "bpf_lsm_" + target, Kind.FUNC
    elif at == AttachType.TRACE_ITER:
        name, kind = "bpf_iter_" + target, Kind.FUNC
    elif prog.type == ProgType.EXT:
        raise ProgramLoadError(f"program {prog.name!r}: freplace programs need the target program's fd "
                               f"(attach_prog_fd), which an object file cannot name")
    else:
        name, kind = target, Kind.FUNC
    module = None
    if ":" in name and kind == Kind.FUNC:  # "module:function" as newer libbpf accepts
        module, name = name.split(":", 1)
    vm = vmlinux or BTF.vmlinux()
    if module is None:
        for t in vm.find_all(name, kind):
            if t.name == name:
                return t.id, None
    from .externs import ResolvedExterns, _ModuleBTFs

    holder = ResolvedExterns()
    for mod_name, mbtf, fd in _ModuleBTFs(holder).all():
        if module is not None and mod_name != module:
            continue
        for t in mbtf.find_all(name, kind):
            if t.name == name and t.btf is mbtf:
                keep = fd.dup()
                holder.close()
                return t.id, keep
    holder.close()
    raise ProgramLoadError(f"program {prog.name!r}: attach target {target!r} ({kind.name.lower()} {name!r}) is not "
                           f"in this kernel's BTF")


def check_loadable(prog: "ProgramSpec") -> None:
    """Refuse, before anything is created, a program whose type the section name does not give
    (:class:`ELFError`: an unknown section) or that corebpf cannot load yet (:class:`ProgramLoadError`)."""
    if not isinstance(prog.type, ProgType) or prog.type == ProgType.UNSPEC:
        raise ELFError(f"program {prog.name!r}: unknown section name {prog.section!r}: libbpf's SEC() "
                               f"conventions do not give it a program type; rename the section or set "
                               f"spec.programs[{prog.name!r}].type before loading")
    if prog.type == ProgType.STRUCT_OPS:
        raise ProgramLoadError(f"program {prog.name!r}: struct_ops programs are loaded through their .struct_ops "
                               f"map, which corebpf does not support yet; set autoload = False to skip it")


def _func_info_bytes(recs: Sequence[tuple[int, int]]) -> bytes:
    return b"".join(struct.pack("<II", a, b) for a, b in recs)


def _line_info_bytes(recs: Any) -> bytes:
    return np.ascontiguousarray(recs, dtype="<u4").tobytes()


def load_linked(prog: "ProgramSpec", linked: "LinkedProgram", license: str, kern_version: int,
                btf: Optional["LoadedBTF"], fd_array: Sequence[int], resolutions: dict[str, list["Resolution"]],
                vmlinux: Optional["BTF"] = None, log_level: Optional[int] = None) -> Program:
    """Load ``linked`` as ``prog`` describes it; returns the :class:`Program` (with ``.section`` set)."""
    check_loadable(prog)
    attach_id, attach_fd = 0, None
    if prog.attach_btf:
        attach_id, attach_fd = attach_btf_target(prog, vmlinux)
    fi = li = None
    if btf is not None and linked.func_info:
        fi = _func_info_bytes(linked.func_info)
        li = _line_info_bytes(linked.line_info) if len(linked.line_info) else None
    try:
        p = Program.load(bytes(linked.insns), prog.type, license, name=prog.name[:15],
                         expected_attach_type=prog.expected_attach_type, attach_btf_id=attach_id,
                         attach_btf_obj_fd=attach_fd, kern_version=kern_version, flags=prog.flags,
                         btf=btf, func_info=fi, line_info=li, fd_array=fd_array or None, log_level=log_level)
    except VerifierError as exc:
        explained = _explain_core(exc, linked, resolutions) or _explain_ksym(exc) or _explain_license(exc, license)
        if explained is not None:
            raise explained from None
        raise
    finally:
        if attach_fd is not None:
            attach_fd.close()
    p.section = prog.section  # type: ignore[attr-defined]
    return p


def _explain_license(exc: VerifierError, license: str) -> Optional[VerifierError]:
    """A GPL-only helper called from an object without a GPL-compatible license section."""
    if "GPL" not in exc.log or "non-GPL" not in exc.log:
        return None
    what = f"the object's license is {license!r}" if license else "the object has no 'license' section"
    err = VerifierError(exc.errno or 22, exc.command, exc.summary, exc.log,
                        f"{what}: GPL-only helpers need a GPL-compatible license, e.g. "
                        f"char LICENSE[] SEC(\"license\") = \"GPL\";")
    err.insn_index = getattr(exc, "insn_index", None)  # type: ignore[attr-defined]
    return err


def _explain_ksym(exc: VerifierError) -> Optional[VerifierError]:
    """Typed ksym variables resolve to a BTF id, but the kernel still needs their address: without
    CONFIG_KALLSYMS_ALL only functions have one."""
    if "failed to find the address for kernel symbol" not in exc.log:
        return None
    err = VerifierError(exc.errno or 2, exc.command, exc.summary, exc.log,
                        "typed __ksym variables need the kernel's CONFIG_KALLSYMS_ALL (kallsyms of data symbols), "
                        "which this kernel lacks: read the value another way, or declare the extern __weak and "
                        "test it before use")
    err.insn_index = getattr(exc, "insn_index", None)  # type: ignore[attr-defined]
    return err


def _explain_core(exc: VerifierError, linked: "LinkedProgram",
                  resolutions: dict[str, list["Resolution"]]) -> Optional[VerifierError]:
    """A VerifierError naming the poisoned CO-RE relocation, when that is what the verifier hit."""
    if not resolutions:
        return None
    from ..btf.core import explain_verifier_log, find_poisoned

    idx = getattr(exc, "insn_index", None)
    for fn, offset in linked.layout.items():
        res = resolutions.get(fn)
        if not res:
            continue
        hit = find_poisoned(res, idx, offset=offset) if idx is not None else None
        log = explain_verifier_log(exc.log, res, offset=offset)
        if hit is not None or log is not None:
            why = hit.explanation if hit is not None else "failed to resolve a CO-RE relocation"
            err = VerifierError(exc.errno or 22, exc.command, f"{linked.name}: {why}", log or exc.log,
                                "the kernel lacks the type or field this relocation needs: guard the access with "
                                "bpf_core_field_exists()/bpf_core_type_exists() or give a BTF with btf=")
            err.insn_index = idx  # type: ignore[attr-defined]
            return err
    return None
