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
import warnings
from typing import TYPE_CHECKING, Optional

from ..btf.builder import BTFLoadError, LoadedBTF, encode_records, load_btf
from ..btf.index import record_words
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


def _split(raw: bytes) -> tuple[list[list[int]], bytearray, str]:
    magic = struct.unpack_from("<H", raw, 0)[0]
    e = "<" if magic == 0xEB9F else ">"
    hdr_len = struct.unpack_from(e + "I", raw, 4)[0]
    type_off, type_len, str_off, str_len = struct.unpack_from(e + "IIII", raw, 8)
    tp = hdr_len + type_off
    words = struct.unpack_from(f"{e}{type_len // 4}I", raw, tp)
    records, i = [], 0
    while i < len(words):
        n = record_words(words[i + 1])
        records.append(list(words[i:i + n]))
        i += n
    strings = bytearray(raw[hdr_len + str_off:hdr_len + str_off + str_len])
    return records, strings, ("little" if e == "<" else "big")


def _kind(rec: list[int]) -> int:
    return (rec[1] >> 24) & 0x1F


def _name(strings: bytearray, off: int) -> str:
    end = strings.find(b"\0", off)
    return strings[off:end if end >= 0 else len(strings)].decode(errors="replace")


def finalize_btf(spec: "ObjectSpec") -> bytes:
    """The object's BTF with DATASEC layouts, extern sections and hidden functions fixed up."""
    records, strings, order = _split(spec.btf_raw)

    def rec(type_id: int) -> list[int]:
        return records[type_id - 1]

    def add_string(s: str) -> int:
        off = len(strings)
        strings.extend(s.encode() + b"\0")
        return off

    int_id = 0
    for i, r in enumerate(records, 1):
        if _kind(r) == Kind.INT and r[2] == 4 and (r[3] & 0xFF) == 32:
            int_id = i
            break
    static_funcs = {p.name for p in (*spec.programs.values(), *spec.subprograms.values()) if p.btf_static}
    kcfg_off = {e.name: e.offset for e in spec.externs.values() if e.kind == ExternKind.KCONFIG}
    kcfg_size = max((e.offset + e.size for e in spec.externs.values() if e.kind == ExternKind.KCONFIG), default=0)

    for r in list(records):
        kind = _kind(r)
        if kind == Kind.FUNC and static_funcs and _name(strings, r[0]) in static_funcs:
            r[1] = (r[1] & ~0xFFFF) | _FUNC_STATIC
        if kind != Kind.DATASEC:
            continue
        name = _name(strings, r[0])
        vlen = r[1] & 0xFFFF
        triples = [r[3 + 3 * i:6 + 3 * i] for i in range(vlen)]
        if name == KSYMS_SEC:
            if int_id == 0:
                records.append([add_string("int"), Kind.INT << 24, 4, (1 << 24) | 32])  # signed 32-bit int
                int_id = len(records)
            dummy_id = 0
            for i, t in enumerate(triples):
                vt = rec(t[0])
                if _kind(vt) == Kind.FUNC:
                    if dummy_id == 0:
                        records.append([add_string("dummy_ksym"), Kind.VAR << 24, int_id, _VAR_GLOBAL_ALLOCATED])
                        dummy_id = len(records)
                    proto = rec(vt[2])
                    dummy_name = records[dummy_id - 1][0]
                    for j in range(proto[1] & 0xFFFF):
                        if proto[3 + 2 * j + 1] and not proto[3 + 2 * j]:
                            proto[3 + 2 * j] = dummy_name
                    t[0] = dummy_id
                    vt[1] = (vt[1] & ~0xFFFF) | _FUNC_GLOBAL
                else:
                    vt[3] = _VAR_GLOBAL_ALLOCATED
                    vt[2] = int_id
                t[1], t[2] = 4 * i, 4
            r[2] = 4 * vlen
        elif name == KCONFIG_SEC:
            for t in triples:
                vt = rec(t[0])
                vt[3] = _VAR_GLOBAL_ALLOCATED
                t[1] = kcfg_off.get(_name(strings, vt[0]), t[1])
            r[2] = kcfg_size
        else:
            layout = spec.datasec_layout.get(name)
            if layout is not None:
                size, offsets = layout
                r[2] = size
                for t in triples:
                    t[1] = offsets.get(_name(strings, rec(t[0])[0]), t[1])
        triples.sort(key=lambda t: t[1])
        r[3:] = [w for t in triples for w in t]
    return encode_records(records, bytes(strings), byteorder=order)


def load_object_btf(spec: "ObjectSpec", *, features: Optional["BTFFeatures"] = None) -> Optional[LoadedBTF]:
    """Finalise, sanitise for this kernel and load the object's BTF; None (with a warning) when the
    object has no BTF or the kernel refuses it."""
    if spec.btf is None or not spec.btf_raw:
        return None
    from ..btf.sanitize import sanitize

    data = finalize_btf(spec)
    feats = features if features is not None else btf_features()
    if not feats.complete:
        data = sanitize(data, feats)
    try:
        return load_btf(data)
    except (BTFLoadError, BPFError) as exc:
        warnings.warn(f"{spec.source}: the kernel refused the object's BTF ({exc}); loading without BTF: no "
                      f"func/line info, maps without BTF types", BTFUnavailableWarning, stacklevel=3)
        return None
