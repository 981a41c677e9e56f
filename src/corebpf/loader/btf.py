"""The object's BTF, made loadable: libbpf's finalisation and sanitisation, then ``BPF_BTF_LOAD``.

clang's ``.BTF`` is not what the kernel accepts as is: DATASEC sizes and variable offsets are zero
(filled from the ELF), extern variables and functions sit in ``.kconfig``/``.ksyms`` DATASECs with
extern linkage (turned into allocated ints, as libbpf does), and older kernels lack newer kinds
(rewritten by :func:`corebpf.btf.sanitize.sanitize`). If the kernel still refuses it, the object is
loaded without BTF (no func/line info, maps without BTF types), with a warning, like libbpf.
"""

from __future__ import annotations

import functools
import struct
import sys
import warnings
from array import array
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..btf.builder import BTFLoadError, LoadedBTF, load_btf
from ..btf.types import Kind
from ..errors import BPFError
from ..elf.externs import KCONFIG_SEC, KSYMS_SEC
from ..elf.specs import ExternKind

if TYPE_CHECKING:  # pragma: no cover
    from ..btf.sanitize import BTFFeatures
    from ..elf.objectspec import ObjectSpec

__all__ = ["finalize_btf", "load_object_btf", "btf_features", "BTFUnavailableWarning"]

_VAR_GLOBAL_ALLOCATED = 1
_FUNC_STATIC, _FUNC_GLOBAL = 0, 1


class BTFUnavailableWarning(UserWarning):
    """The kernel refused the object's BTF: loading without it (no func/line info, untyped maps)."""


@functools.lru_cache(maxsize=1)
def btf_features() -> "BTFFeatures":
    """The BTF kinds this kernel accepts (probed once per process)."""
    from ..btf.sanitize import probe_features

    return probe_features()


def _name(strings: bytes, off: int) -> str:
    end = strings.find(b"\0", off)
    return strings[off:end if end >= 0 else len(strings)].decode(errors="replace")


def finalize_btf(spec: "ObjectSpec") -> bytes:
    """The object's BTF with DATASEC layouts, extern sections and hidden functions fixed up.

    Records are patched in place in a copy of the blob (no re-encoding); the few types libbpf adds
    (an ``int``, a ``dummy_ksym`` variable) are appended after the last type.
    """
    btf = spec.btf
    assert btf is not None
    raw = spec.btf_raw
    h = btf.header
    e = "<" if h.byteorder == "little" else ">"
    types = bytearray(raw[h.types_pos:h.types_pos + h.type_len])
    strings = bytearray(raw[h.strings_pos:h.strings_pos + h.str_len])
    words = memoryview(types).cast("I") if e == ("<" if sys.byteorder == "little" else ">") else None
    if words is None:  # a foreign-endian object never gets here (the ELF reader refuses it)
        raise ValueError("object BTF byte order differs from the host")
    offsets = btf.index.offsets
    kinds = (np.frombuffer(types, dtype=np.uint32)[offsets + 1] >> 24) & 0x1F
    extra: list[list[int]] = []
    n_types = len(offsets)

    def rec_at(type_id: int) -> int:
        return int(offsets[type_id - 1])

    def add_string(text: str) -> int:
        off = len(strings)
        strings.extend(text.encode() + b"\0")
        return off

    static_funcs = {p.name for p in (*spec.programs.values(), *spec.subprograms.values()) if p.btf_static}
    if static_funcs:
        for tid in (np.nonzero(kinds == Kind.FUNC)[0] + 1).tolist():
            o = rec_at(tid)
            if _name(strings, words[o]) in static_funcs:
                words[o + 1] = (words[o + 1] & ~0xFFFF) | _FUNC_STATIC
    kcfg = [x for x in spec.externs.values() if x.kind == ExternKind.KCONFIG]
    kcfg_off = {x.name: x.offset for x in kcfg}
    kcfg_size = max((x.offset + x.size for x in kcfg), default=0)
    int_id = 0

    for tid in (np.nonzero(kinds == Kind.DATASEC)[0] + 1).tolist():
        o = rec_at(tid)
        name = _name(strings, words[o])
        vlen = words[o + 1] & 0xFFFF
        triples = [list(words[o + 3 + 3 * i:o + 6 + 3 * i]) for i in range(vlen)]
        if name == KSYMS_SEC:
            if int_id == 0:
                for cand in (np.nonzero(kinds == Kind.INT)[0] + 1).tolist():
                    c = rec_at(cand)
                    if words[c + 2] == 4 and (words[c + 3] & 0xFF) == 32:
                        int_id = cand
                        break
                if int_id == 0:
                    extra.append([add_string("int"), Kind.INT << 24, 4, (1 << 24) | 32])
                    int_id = n_types + len(extra)
            dummy_id = dummy_name = 0
            for i, t in enumerate(triples):
                vo = rec_at(t[0])
                if (words[vo + 1] >> 24) & 0x1F == Kind.FUNC:
                    if dummy_id == 0:
                        dummy_name = add_string("dummy_ksym")
                        extra.append([dummy_name, Kind.VAR << 24, int_id, _VAR_GLOBAL_ALLOCATED])
                        dummy_id = n_types + len(extra)
                    po = rec_at(words[vo + 2])
                    for j in range(words[po + 1] & 0xFFFF):
                        if words[po + 3 + 2 * j + 1] and not words[po + 3 + 2 * j]:
                            words[po + 3 + 2 * j] = dummy_name
                    t[0] = dummy_id
                    words[vo + 1] = (words[vo + 1] & ~0xFFFF) | _FUNC_GLOBAL
                else:
                    words[vo + 3] = _VAR_GLOBAL_ALLOCATED
                    words[vo + 2] = int_id
                t[1], t[2] = 4 * i, 4
            words[o + 2] = 4 * vlen
        elif name == KCONFIG_SEC:
            for t in triples:
                vo = rec_at(t[0])
                words[vo + 3] = _VAR_GLOBAL_ALLOCATED
                t[1] = kcfg_off.get(_name(strings, words[vo]), t[1])
            words[o + 2] = kcfg_size
        else:
            layout = spec.datasec_layout.get(name)
            if layout is not None:
                size, var_offsets = layout
                words[o + 2] = size
                for t in triples:
                    t[1] = var_offsets.get(_name(strings, words[rec_at(t[0])]), t[1])
        triples.sort(key=lambda t: t[1])
        for i, t in enumerate(triples):
            words[o + 3 + 3 * i:o + 6 + 3 * i] = array("I", t)
    words.release()
    for r in extra:
        types += struct.pack(f"{e}{len(r)}I", *r)
    header = struct.pack(f"{e}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + bytes(types) + bytes(strings)


def load_object_btf(spec: "ObjectSpec", *, features: Optional["BTFFeatures"] = None) -> Optional[LoadedBTF]:
    """Finalise, sanitise for this kernel and load the object's BTF; None (with a warning) when the
    object has no BTF or the kernel refuses it.

    Without ``features``, the finalised BTF is tried as is first: a kernel that accepts it needs no
    probing (the common case, and ~7 BTF loads saved); only on refusal are the kernel's BTF kinds
    probed and the BTF sanitised, as libbpf does up front.
    """
    if spec.btf is None or not spec.btf_raw:
        return None
    data = finalize_btf(spec)
    first_error: Optional[BaseException] = None
    if features is None:
        try:
            return load_btf(data)
        except (BTFLoadError, BPFError) as exc:
            first_error = exc
        features = btf_features()
    try:
        if not features.complete:
            from ..btf.sanitize import sanitize

            data = sanitize(data, features)
        elif first_error is not None:
            raise first_error
        return load_btf(data)
    except (BTFLoadError, BPFError) as exc:
        warnings.warn(f"{spec.source}: the kernel refused the object's BTF ({exc}); loading without BTF: no "
                      f"func/line info, maps without BTF types", BTFUnavailableWarning, stacklevel=3)
        return None
