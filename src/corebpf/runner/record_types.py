"""Which BTF type the records of each ring/perf buffer map have.

Ring buffers carry no value type and perf event arrays hold fds, so the record type usually has to
come from elsewhere. In order:

1. an explicit choice (``{"events": "event"}``; the key ``"*"`` applies to every buffer);
2. the map's BTF value type, when it is a struct or union;
3. a struct or union of the object's BTF named like the map: ``events`` -> ``events``, ``event``;
   ``perf_events`` -> ``perf_events``, ``perf_event``; then ``event`` (the libbpf-tools idiom,
   kept in BTF with ``const struct event *unused __attribute__((unused));``).

Otherwise the records stay raw bytes.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from ..btf.types import Kind
from ..errors import CoreBPFError
from ..events import RecordType

__all__ = ["BUFFER_MAP_TYPES", "buffer_maps", "parse_type_options", "record_type_for", "find_record_type"]

BUFFER_MAP_TYPES = ("RINGBUF", "PERF_EVENT_ARRAY")
_COMPOSITE = (Kind.STRUCT, Kind.UNION)


def buffer_maps(obj: Any) -> dict[str, Any]:
    """The ring buffer and perf event array maps of a loaded object, by name (object order)."""
    out = {}
    for name, m in obj.maps.items():
        tname = getattr(m.type, "name", "")
        if tname in BUFFER_MAP_TYPES:
            out[name] = m
    return out


def parse_type_options(options: "list[str] | tuple[str, ...]") -> dict[str, str]:
    """``["events=event", "struct data"]`` -> ``{"events": "event", "*": "struct data"}``.

    ``MAP=TYPE`` names the record type of one map; a bare ``TYPE`` is for every buffer map."""
    out: dict[str, str] = {}
    for opt in options:
        mname, sep, tname = opt.partition("=")
        if not sep:
            mname, tname = "*", opt
        mname, tname = mname.strip(), tname.strip()
        if not mname or not tname:
            raise CoreBPFError(f"invalid --type {opt!r}: expected MAP=TYPE (e.g. events=event) or TYPE")
        out[mname] = tname
    return out


def find_record_type(btf: Any, name: str) -> Optional[RecordType]:
    """The struct/union/typedef ``name`` (``"event"``, ``"struct event"``) of ``btf`` as a record type."""
    bare = name
    kinds: tuple[Kind, ...] = (*_COMPOSITE, Kind.TYPEDEF)
    for prefix, kind in (("struct ", Kind.STRUCT), ("union ", Kind.UNION)):
        if name.startswith(prefix):
            bare, kinds = name[len(prefix):].strip(), (kind,)
    for kind in kinds:
        try:
            return RecordType(btf.find(bare, kind))
        except (KeyError, TypeError):
            continue
    return None


def _composites(btf: Any) -> list[str]:
    """C names of the object's named structs and unions (for error messages)."""
    try:
        return sorted({t.format_c() for t in btf if t.kind in _COMPOSITE and t.name})
    except (TypeError, CoreBPFError):
        return []


def _name_guesses(map_name: str) -> list[str]:
    guesses = [map_name]
    if map_name.endswith("s"):
        guesses.append(map_name[:-1])
    guesses.append("event")
    return list(dict.fromkeys(guesses))


def record_type_for(obj: Any, map_name: str, explicit: Mapping[str, str]) -> Optional[RecordType]:
    """The record type of buffer map ``map_name`` of ``obj`` (see the module docstring), or None.

    An explicit type that the object's BTF lacks raises :class:`CoreBPFError` listing what it has."""
    btf = getattr(obj.spec, "btf", None)
    wanted = explicit.get(map_name, explicit.get("*"))
    if wanted is not None:
        found = find_record_type(btf, wanted) if btf is not None else None
        if found is None:
            have = _composites(btf) if btf is not None else []
            listing = f"; it has: {', '.join(have[:20])}" if have else "; the object has no struct types in BTF"
            raise CoreBPFError(f"--type {map_name}={wanted}: no struct/union/typedef {wanted!r} in the "
                               f"object's BTF{listing}")
        return found
    vt = getattr(obj.maps[map_name], "value_type", None)
    if vt is not None:
        try:
            if vt.resolve().kind in _COMPOSITE:
                return RecordType(vt)
        except (TypeError, CoreBPFError):
            pass
    if btf is None:
        return None
    for guess in _name_guesses(map_name):
        found = find_record_type(btf, guess)
        if found is not None and found.btf_type is not None and found.btf_type.resolve().kind in _COMPOSITE:
            return found
    return None
