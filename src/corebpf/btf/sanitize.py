"""Rewrite BTF for kernels that lack newer kinds, the way libbpf's sanitisation does.

Each rewrite keeps the record length (so type ids stay valid) and replaces a kind the kernel does
not know with one it does, keeping sizes so map key/value layouts still check:

=====================  ======================================================================
missing feature        replacement
=====================  ======================================================================
DATASEC/VAR            VAR -> 1-byte INT (fits any variable); DATASEC -> STRUCT of the same size whose
                       members are the variables (``.`` in the name becomes ``_``)
FUNC/FUNC_PROTO        FUNC_PROTO -> ENUM (parameters become enumerators); FUNC -> TYPEDEF
FUNC linkage           FUNC with global/extern linkage -> static
FLOAT                  FLOAT -> anonymous STRUCT of the same size, no members
DECL_TAG               DECL_TAG -> anonymous 1-byte INT
TYPE_TAG               TYPE_TAG -> anonymous CONST of the same target
ENUM64                 ENUM64 -> UNION of the same size whose members are 1-byte INTs named
                       after the enumerators; ENUM's signedness flag is cleared
=====================  ======================================================================

:func:`probe_features` asks the running kernel which kinds it accepts by loading tiny BTF blobs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import numpy as np

from .builder import encode_records
from .index import record_words
from .reader import BTF
from .types import Kind

__all__ = ["BTFFeatures", "sanitize", "probe_features"]


@dataclass(frozen=True)
class BTFFeatures:
    """What the target kernel's BTF loader accepts (all True: a current kernel, nothing to rewrite).

    Fields are in the order the kernel gained them.
    """

    func: bool = True         # BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO (5.0)
    datasec: bool = True      # BTF_KIND_VAR, BTF_KIND_DATASEC (5.2)
    func_global: bool = True  # FUNC linkage global/extern (5.6)
    float: bool = True        # BTF_KIND_FLOAT (5.13)
    decl_tag: bool = True     # BTF_KIND_DECL_TAG (5.16)
    type_tag: bool = True     # BTF_KIND_TYPE_TAG (5.17)
    enum64: bool = True       # BTF_KIND_ENUM64, signed ENUM (6.0)

    @classmethod
    def none(cls) -> "BTFFeatures":
        """A kernel with none of the optional kinds (rewrite everything)."""
        return cls(**{f.name: False for f in fields(cls)})

    @property
    def complete(self) -> bool:
        """True when every optional kind is supported (nothing to rewrite)."""
        return all(getattr(self, f.name) for f in fields(self))

    def implied(self) -> "BTFFeatures":
        """These features with kernel history applied: kinds arrived in the order of the fields, so a
        kernel without one also lacks every later one (this keeps rewrites consistent, e.g. no
        DECL_TAG left pointing at a VAR that became an INT)."""
        out: dict[str, bool] = {}
        ok = True
        for f in fields(self):
            ok = ok and getattr(self, f.name)
            out[f.name] = ok
        return BTFFeatures(**out)


def _info(kind: int, vlen: int, kflag: bool = False) -> int:
    return (int(kflag) << 31) | (kind << 24) | (vlen & 0xFFFF)


def sanitize(btf: "BTF | bytes", features: BTFFeatures, *, strict: bool = False) -> bytes:
    """A copy of ``btf`` (non-split) with the kinds ``features`` lacks rewritten (see the module doc).

    Unless ``strict``, ``features.implied()`` is used (a missing kind implies the later ones missing).
    """
    if not strict:
        features = features.implied()
    if isinstance(btf, (bytes, bytearray, memoryview)):
        btf = BTF.from_bytes(bytes(btf))
    if btf.base is not None:
        raise ValueError("sanitize() works on self-contained BTF (an object's), not split BTF")
    e = "<" if btf.byteorder == "little" else ">"
    words = np.frombuffer(btf.raw, dtype=e + "u4", count=btf.header.type_len // 4, offset=btf.header.types_pos)
    offsets = btf.index.offsets.tolist()
    records: list[list[int]] = []
    for off in offsets:
        info = int(words[off + 1])
        records.append([int(w) for w in words[off:off + record_words(info)]])
    strings = bytearray(btf.raw[btf.header.strings_pos:btf.header.strings_pos + btf.header.str_len])

    def add_string(s: str) -> int:
        off = len(strings)
        strings.extend(s.encode() + b"\0")
        return off

    extra: list[list[int]] = []
    placeholder = 0
    next_id = btf.last_id + 1
    for rec in records:
        info = rec[1]
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = bool(info >> 31)
        if not features.datasec and kind == Kind.VAR:
            # 1 byte: the struct standing in for the DATASEC must still hold a 1-byte variable at its end
            rec[:] = [rec[0], _info(Kind.INT, 0), 1, 8]
        elif not features.datasec and kind == Kind.DATASEC:
            name = btf.string_at(rec[0]).replace(".", "_") if rec[0] else ""
            members: list[int] = []
            for i in range(vlen):
                vtype, voff, _vsize = rec[3 + 3 * i:6 + 3 * i]
                vname = btf[vtype].name if 0 < vtype <= btf.last_id else ""
                members += [add_string(vname) if vname else 0, vtype, voff * 8]
            rec[:] = [add_string(name) if name else 0, _info(Kind.STRUCT, vlen), rec[2], *members]
        elif not features.func and kind == Kind.FUNC_PROTO:
            rec[1] = _info(Kind.ENUM, vlen)
            rec[2] = 4
            # unnamed parameters would be invalid enumerator names
            for i in range(vlen):
                if rec[3 + 2 * i] == 0:
                    rec[3 + 2 * i] = add_string(f"param{i}")
        elif not features.func and kind == Kind.FUNC:
            rec[1] = _info(Kind.TYPEDEF, 0)
        elif not features.func_global and kind == Kind.FUNC:
            rec[1] = _info(Kind.FUNC, 0)
        elif not features.float and kind == Kind.FLOAT:
            rec[:] = [0, _info(Kind.STRUCT, 0), rec[2]]
        elif not features.decl_tag and kind == Kind.DECL_TAG:
            rec[:] = [0, _info(Kind.INT, 0), 1, 8]
        elif not features.type_tag and kind == Kind.TYPE_TAG:
            rec[:] = [0, _info(Kind.CONST, 0), rec[2]]
        elif not features.enum64 and kind == Kind.ENUM64:
            if not placeholder:
                placeholder = next_id
                next_id += 1
                extra.append([add_string("enum64_placeholder"), _info(Kind.INT, 0), 1, 8])
            members = []
            for i in range(vlen):
                members += [rec[3 + 3 * i], placeholder, 0]
            rec[:] = [rec[0], _info(Kind.UNION, vlen), rec[2], *members]
        elif not features.enum64 and kind == Kind.ENUM and kflag:
            rec[1] = _info(Kind.ENUM, vlen)
    return encode_records(records + extra, bytes(strings), byteorder=btf.byteorder)


def _try_load(build) -> bool:
    from .builder import BTFBuilder, BTFLoadError, load_btf
    from ..errors import BPFError

    b = BTFBuilder()
    build(b)
    try:
        with load_btf(b.encode()):
            return True
    except (BTFLoadError, BPFError):
        return False


def probe_features() -> BTFFeatures:
    """Which optional BTF kinds the running kernel accepts (each probed by loading a tiny blob)."""
    def datasec(b):
        i = b.add_int("int", 4, signed=True)
        v = b.add_var("x", i, 0)
        b.add_datasec(".data", 4, [(v, 0, 4)])

    def func(b):
        i = b.add_int("int", 4, signed=True)
        p = b.add_func_proto(i, [("a", i)])
        b.add_func("f", p, 0)

    def func_global(b):
        i = b.add_int("int", 4, signed=True)
        p = b.add_func_proto(i, [("a", i)])
        b.add_func("f", p, 1)

    def float_(b):
        b.add_float("float", 4)

    def decl_tag(b):
        i = b.add_int("int", 4, signed=True)
        v = b.add_var("x", i, 0)
        b.add_decl_tag("tag", v)

    def type_tag(b):
        i = b.add_int("int", 4, signed=True)
        t = b.add_type_tag("tag", i)
        b.add_ptr(t)

    def enum64(b):
        b.add_enum64("e", [("A", 1 << 40)])

    return BTFFeatures(datasec=_try_load(datasec), func=_try_load(func), func_global=_try_load(func_global),
                       float=_try_load(float_), decl_tag=_try_load(decl_tag), type_tag=_try_load(type_tag),
                       enum64=_try_load(enum64))
