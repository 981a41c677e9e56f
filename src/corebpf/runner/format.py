"""Items as one JSON object or one readable line each (what ``corebpf run`` prints).

JSON shapes::

    {"map": "events", "type": "struct event", "event": {"pid": 42, "comm": "bash", "source": "SOURCE_RING"}}
    {"map": "perf_events", "cpu": 1, "type": "struct event", "event": {...}}
    {"map": "events", "raw": "2a000000..."}            # no record type known
    {"map": "perf_events", "cpu": 1, "lost": 17}
    {"trace": "corebpf-run ...", "comm": "bash", "pid": 42, "cpu": 0, "ts": 1234.5, "line": "..."}

Enum values become their enumerator's name (the number when it has none), char arrays strings,
other byte arrays hex.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from ..btf.values import EnumMember
from .records import Event, Item, Lost, TraceLine

__all__ = ["jsonable", "item_to_json", "item_to_text", "value_to_text"]


def jsonable(value: Any) -> Any:
    """A decoded BTF value as JSON-ready data."""
    if isinstance(value, EnumMember):
        return value.name if value.name else int(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return str(value)


def item_to_json(item: Item) -> dict[str, Any]:
    """One item as a JSON object (see the module docstring)."""
    if isinstance(item, Event):
        out: dict[str, Any] = {"map": item.map}
        if item.cpu is not None:
            out["cpu"] = item.cpu
        if item.decoded:
            out["type"] = item.type_name
            out["event"] = jsonable(item.value)
        else:
            out["raw"] = bytes(item.value).hex()
        return out
    if isinstance(item, Lost):
        out = {"map": item.map}
        if item.cpu is not None:
            out["cpu"] = item.cpu
        out["lost"] = item.count
        return out
    if isinstance(item, TraceLine):
        out = {"trace": item.message}
        for key, val in (("comm", item.comm), ("pid", item.pid), ("cpu", item.cpu), ("ts", item.timestamp)):
            if val is not None:
                out[key] = val
        out["line"] = item.line
        return out
    raise TypeError(f"not a run item: {item!r}")


def value_to_text(value: Any) -> str:
    """A decoded value in one line: ``pid=42 comm=bash inner={a=1 b=2} arr=[1, 2]``."""
    if isinstance(value, Mapping):
        return " ".join(f"{k}={_nested(v)}" for k, v in value.items())
    return _nested(value)


def _nested(value: Any) -> str:
    if isinstance(value, EnumMember):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + value_to_text(value) + "}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return _nested(value.tolist())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else repr(value)
    return str(value)


def item_to_text(item: Item, *, clock: bool = True) -> str:
    """One item as a readable line, prefixed with the local time when ``clock``."""
    if isinstance(item, Event):
        where = f"{item.map}[cpu {item.cpu}]" if item.cpu is not None else item.map
        body = value_to_text(item.value) if item.decoded else f"{len(item.value)} bytes {bytes(item.value).hex()}"
        text = f"{where}: {body}"
    elif isinstance(item, Lost):
        where = f"{item.map}[cpu {item.cpu}]" if item.cpu is not None else item.map
        text = f"{where}: {item.count} samples lost (perf buffer full)"
    elif isinstance(item, TraceLine):
        who = f"{item.comm}-{item.pid} [{item.cpu:03d}] " if item.pid is not None and item.cpu is not None else ""
        text = f"trace: {who}{item.message}"
    else:
        raise TypeError(f"not a run item: {item!r}")
    return f"{datetime.now():%H:%M:%S} {text}" if clock else text
