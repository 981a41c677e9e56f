"""BTF types as JSON records, in the shape of ``bpftool btf dump file X -j``.

``corebpf btf dump --format json`` prints ``{"types": [...]}``, one object per type, with the keys
bpftool uses so scripts can switch between the two:

=============  ===============================================================================
every type     ``id``, ``kind`` (``"STRUCT"``...), ``name`` (``"(anon)"`` when anonymous)
INT            ``size``, ``bits_offset``, ``nr_bits``, ``encoding`` (``(none)``/``SIGNED``/``CHAR``/``BOOL``)
PTR, TYPEDEF,  ``type_id``
qualifiers,
TYPE_TAG
ARRAY          ``type_id``, ``index_type_id``, ``nr_elems``
STRUCT/UNION   ``size``, ``vlen``, ``members``: ``name``, ``type_id``, ``bits_offset`` and, for
               bitfields, ``bitfield_size``
ENUM/ENUM64    ``encoding`` (``SIGNED``/``UNSIGNED``), ``size``, ``vlen``, ``values``: ``name``, ``val``
FWD            ``fwd_kind`` (``struct``/``union``)
FUNC           ``type_id``, ``linkage`` (``static``/``global``/``extern``)
FUNC_PROTO     ``ret_type_id``, ``vlen``, ``params``: ``name``, ``type_id``
VAR            ``type_id``, ``linkage``
DATASEC        ``size``, ``vlen``, ``vars``: ``type_id``, ``offset``, ``size``
FLOAT          ``size``
DECL_TAG       ``type_id``, ``component_idx``
=============  ===============================================================================

Standard library only (see :mod:`corebpf.btf.c_dump_table`).
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

from corebpf.errors import BTFError
from corebpf.btf.c_dump_table import (
    ARRAY, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT, KIND_NAMES, PTR, RESTRICT,
    STRUCT, TYPE_TAG, TYPEDEF, UNION, VAR, VOLATILE, RawTypes,
)

__all__ = ["type_record", "iter_json", "dependencies"]

_INT_ENCODING = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def type_record(t: RawTypes, tid: int) -> dict:
    """The bpftool-style JSON object of type ``tid``."""
    w, off, kind = t.words, t.offs[tid], t.kinds[tid]
    info = w[off + 1]
    vlen, kflag = info & 0xFFFF, info >> 31
    name = t.name(tid) or "(anon)"
    rec: dict = {"id": tid, "kind": KIND_NAMES[kind], "name": name}
    if kind == INT:
        enc = w[off + 3]
        rec.update(size=w[off + 2], bits_offset=(enc >> 16) & 0xFF, nr_bits=enc & 0xFF,
                   encoding=_INT_ENCODING.get((enc >> 24) & 0xF, "UNKN"))
    elif kind in (PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG):
        rec["type_id"] = w[off + 2]
    elif kind == ARRAY:
        rec.update(type_id=w[off + 3], index_type_id=w[off + 4], nr_elems=w[off + 5])
    elif kind in (STRUCT, UNION):
        members = []
        for p in range(off + 3, off + 3 + 3 * vlen, 3):
            m = {"name": t.string(w[p]) if w[p] else "(anon)", "type_id": w[p + 1]}
            moff = w[p + 2]
            if kflag:
                m["bits_offset"] = moff & 0xFFFFFF
                if moff >> 24:
                    m["bitfield_size"] = moff >> 24
            else:
                m["bits_offset"] = moff
            members.append(m)
        rec.update(size=w[off + 2], vlen=vlen, members=members)
    elif kind in (ENUM, ENUM64):
        values = []
        if kind == ENUM:
            for p in range(off + 3, off + 3 + 2 * vlen, 2):
                v = w[p + 1]
                if kflag and v >> 31:
                    v -= 1 << 32
                values.append({"name": t.string(w[p]), "val": v})
        else:
            for p in range(off + 3, off + 3 + 3 * vlen, 3):
                v = w[p + 1] | (w[p + 2] << 32)
                if kflag and v >> 63:
                    v -= 1 << 64
                values.append({"name": t.string(w[p]), "val": v})
        rec.update(encoding="SIGNED" if kflag else "UNSIGNED", size=w[off + 2], vlen=vlen, values=values)
    elif kind == FWD:
        rec["fwd_kind"] = "union" if kflag else "struct"
    elif kind == FUNC:
        rec.update(type_id=w[off + 2], linkage=_LINKAGE.get(vlen, "(unknown)"))
    elif kind == FUNC_PROTO:
        params = [{"name": t.string(w[p]) if w[p] else "(anon)", "type_id": w[p + 1]}
                  for p in range(off + 3, off + 3 + 2 * vlen, 2)]
        rec.update(ret_type_id=w[off + 2], vlen=vlen, params=params)
    elif kind == VAR:
        rec.update(type_id=w[off + 2], linkage=_LINKAGE.get(w[off + 3], "(unknown)"))
    elif kind == DATASEC:
        rec.update(size=w[off + 2], vlen=vlen,
                   vars=[{"type_id": w[p], "offset": w[p + 1], "size": w[p + 2]}
                         for p in range(off + 3, off + 3 + 3 * vlen, 3)])
    elif kind == FLOAT:
        rec["size"] = w[off + 2]
    elif kind == DECL_TAG:
        idx = w[off + 3]
        rec.update(type_id=w[off + 2], component_idx=idx - (1 << 32) if idx >> 31 else idx)
    return rec


def _refs(t: RawTypes, tid: int) -> list[int]:
    w, off, kind = t.words, t.offs[tid], t.kinds[tid]
    vlen = w[off + 1] & 0xFFFF
    if kind in (PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC, VAR, DECL_TAG):
        return [w[off + 2]]
    if kind == ARRAY:
        return [w[off + 3], w[off + 4]]
    if kind in (STRUCT, UNION):
        return list(w[off + 4:off + 4 + 3 * vlen:3])
    if kind == FUNC_PROTO:
        return [w[off + 2], *w[off + 4:off + 4 + 2 * vlen:2]]
    if kind == DATASEC:
        return list(w[off + 3:off + 3 + 3 * vlen:3])
    return []


def dependencies(t: RawTypes, ids: Iterable[int]) -> list[int]:
    """``ids`` and every type they refer to, directly or not, sorted (void left out)."""
    seen: set[int] = set()
    todo = [i for i in ids if i]
    while todo:
        tid = todo.pop()
        if tid in seen:
            continue
        if not 0 < tid <= t.last_id:
            raise BTFError(f"malformed BTF: a type refers to type id {tid}, past the last id {t.last_id}")
        seen.add(tid)
        todo.extend(r for r in _refs(t, tid) if r and r not in seen)
    return sorted(seen)


def iter_json(t: RawTypes, ids: Optional[Iterable[int]] = None, *, indent: Optional[int] = None) -> Iterator[str]:
    """``{"types": [...]}`` in chunks: the BTF's own types, or ``ids`` (see :func:`dependencies`)."""
    if ids is None:
        ids = range(t.start_id, t.last_id + 1)
    dumps = json.dumps
    sep = ",\n" if indent is not None else ","
    yield '{"types": [' if indent is None else '{\n"types": [\n'
    first = True
    batch: list[str] = []
    for tid in ids:
        try:
            rec = type_record(t, tid)
        except IndexError:
            raise BTFError(f"malformed BTF: type [{tid}] runs past the type section") from None
        text = dumps(rec, indent=indent)
        batch.append(text if first else sep + text)
        first = False
        if len(batch) >= 2048:
            yield "".join(batch)
            batch.clear()
    yield "".join(batch)
    yield "]}\n" if indent is None else "\n]\n}\n"
