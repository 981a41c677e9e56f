"""``TypedMap``: a :class:`corebpf.Map` of a loaded object whose keys and values go through BTF types.

When the object's BTF describes a map's key and value (``__type(key, ...)``), Python values are
encoded with :func:`corebpf.btf.values.encode` and read back with ``decode`` (ints, structs as
``StructValue`` dicts, char arrays as ``str``). Raw bytes of the exact size are still accepted.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

from ..btf.types import Type
from ..btf.values import decode, encode
from ..maps.map import Map

__all__ = ["TypedMap"]

_BYTES = (bytes, bytearray, memoryview)


class TypedMap(Map):
    """A map with optional BTF ``key_type``/``value_type`` (see the module docstring)."""

    key_type: Optional[Type] = None
    value_type: Optional[Type] = None
    spec_name: str = ""

    def _key(self, key: Any) -> bytes:
        if self.key_type is not None and not isinstance(key, _BYTES) and not (
                isinstance(key, int) and self.key_size in (4, 8)):
            return encode(self.key_type, key)
        return super()._key(key)

    def _value(self, value: Any) -> bytes:
        vt = self.value_type
        if vt is not None and not isinstance(value, _BYTES) and not self._rules.value_is_fd:
            if self.percpu:
                if isinstance(value, (list, tuple)):
                    return super()._value([v if isinstance(v, _BYTES) else encode(vt, v) for v in value])
                return super()._value(encode(vt, value))
            return encode(vt, value)
        return super()._value(value)

    def _decode(self, buf: bytearray) -> Any:
        raw = super()._decode(buf)
        vt = self.value_type
        if vt is None or self._rules.lookup_returns_id:
            return raw
        if isinstance(raw, list):
            return [decode(vt, r) for r in raw]
        return decode(vt, raw)

    def __iter__(self) -> Iterator[Any]:
        """Keys, decoded through the key type when the map has one."""
        kt = self.key_type
        for raw in self._iter_raw_keys():
            yield decode(kt, raw) if kt is not None else raw

    def __repr__(self) -> str:
        base = super().__repr__()
        if self.key_type is None and self.value_type is None:
            return base
        k = self.key_type.format_c() if self.key_type is not None else "bytes"
        v = self.value_type.format_c() if self.value_type is not None else "bytes"
        return base[:-1] + f" types=<{k}, {v}>>"
