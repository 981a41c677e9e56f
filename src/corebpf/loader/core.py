"""CO-RE for one load: every function's instructions relocated against the target kernel's BTF.

This is the one call into the CO-RE engine (:mod:`corebpf.btf.core`): like libbpf, each function
(entry program or subprogram) is relocated on its own copy of the code before the subprograms are
appended, so a subprogram is relocated once and reused by every program that calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.core import Resolution, TargetSet
    from ..elf.objectspec import ObjectSpec

__all__ = ["relocate_core", "target_set"]


def target_set(btf: Any = None) -> "TargetSet":
    """CO-RE targets: the running kernel (vmlinux + module BTF) by default, or the BTF the user gives
    (a path, a :class:`~corebpf.btf.BTF`, or a ready :class:`TargetSet`)."""
    from ..btf import BTF
    from ..btf.core import TargetSet

    if btf is None:
        return TargetSet.vmlinux()
    if isinstance(btf, TargetSet):
        return btf
    if isinstance(btf, BTF):
        return TargetSet.from_btf(btf)
    return TargetSet.from_file(btf)


def relocate_core(spec: "ObjectSpec", names: list[str], btf: Any = None,
                  targets: Optional["TargetSet"] = None) -> tuple[dict[str, bytearray], dict[str, list["Resolution"]]]:
    """Relocated code and resolutions for the functions ``names`` that carry CO-RE relocations (the
    others are left out of the result: the linker uses their spec bytes)."""
    code: dict[str, bytearray] = {}
    resolutions: dict[str, list["Resolution"]] = {}
    funcs = [f for n in names for f in [spec.programs.get(n) or spec.subprograms.get(n)] if f is not None]
    if not any(f.core_relos for f in funcs) or spec.btf is None:
        return code, resolutions
    from ..btf.core import CoreRelocator

    core = CoreRelocator(spec.btf, targets if targets is not None else target_set(btf))
    for f in funcs:
        if not f.core_relos:
            continue
        insns = bytearray(f.instructions)
        resolutions[f.name] = core.relocate(insns, f.core_relos, prog_name=f.name)
        code[f.name] = insns
    return code, resolutions
