"""Load BPF objects: :func:`load` (a path or bytes) and :func:`load_spec` (an edited ObjectSpec).

    >>> with corebpf.load("prog.bpf.o") as obj:
    ...     obj.programs["handle"].tag, obj.maps["counts"][1], obj.variables["seen"]

Modules: ``load`` (the order and the all-or-nothing cleanup), ``externs``, ``core`` (the call into the
CO-RE engine), ``btf`` (object BTF finalisation/sanitisation), ``maps``, ``relocate`` (data
relocations), ``programs``, ``object`` (the live :class:`Object`), ``typed_map``.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from .load import load_spec
from .object import Object

__all__ = ["load", "load_spec", "Object"]


def load(source: "Union[str, os.PathLike[str], bytes, bytearray, memoryview]", btf: Any = None,
         pin_root: "str | os.PathLike[str] | None" = None, *, kconfig: Optional[dict[str, str]] = None,
         log_level: Optional[int] = None, programs: Optional[list[str]] = None) -> Object:
    """Open and load a BPF object (an ELF path or its bytes) in one step.

    ``btf``: CO-RE target instead of the running kernel's BTF (a path to raw/ELF/BTFHub BTF, a
    :class:`corebpf.BTF` or a ``TargetSet``). ``pin_root``: directory for ``LIBBPF_PIN_BY_NAME`` maps
    (default ``/sys/fs/bpf``). ``kconfig``: extra/overriding ``CONFIG_*`` values for ``__kconfig``
    externs. ``log_level``: keep the verifier log of successful loads. ``programs``: load only these.
    Returns an :class:`Object` (a context manager). Raises :class:`~corebpf.errors.ELFError` for bad
    objects, :class:`~corebpf.errors.VerifierError` when a program is rejected, other
    :class:`~corebpf.errors.CoreBPFError` for what the kernel lacks; nothing stays loaded on failure.
    """
    from ..elf.objectspec import ObjectSpec

    if isinstance(source, (bytes, bytearray, memoryview)):
        spec = ObjectSpec.from_bytes(source)
    else:
        spec = ObjectSpec.from_file(source)
    return load_spec(spec, btf=btf, pin_root=pin_root, kconfig=kconfig, log_level=log_level, programs=programs)
