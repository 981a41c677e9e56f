"""Values by type: bytes <-> Python values following a BTF type, and numpy dtypes for batches.

* integers -> ``int`` (``bool`` for BOOL-encoded ints), pointers -> ``int`` (the address);
* enums -> :class:`EnumMember` (an ``int`` that knows its enumerator name, ``str()`` is the name);
* ``char`` arrays -> ``str`` up to the first NUL (or ``bytes`` with ``chars="bytes"``), other
  arrays -> ``list``;
* structs and unions -> :class:`StructValue`, a ``dict`` with attribute access. Members of anonymous
  structs/unions appear directly in their parent, as C lets you name them. Bitfields are plain ints.

:func:`encode` takes the same shapes back (missing members are zero; enumerators by value or name).
:func:`numpy_dtype` maps a struct to a structured dtype with the exact offsets and itemsize;
bitfields have no numpy equivalent and are left out (listed in ``dtype.metadata["bitfields"]``).
"""

from __future__ import annotations

import struct
from typing import Any, Mapping, Optional

import numpy as np

from ..errors import CoreBPFError
from .types import Array, Composite, Enum, Float, Int, Member, Pointer, Type, Void

__all__ = ["decode", "encode", "numpy_dtype", "StructValue", "EnumMember", "BTFValueError"]

_MAX_DEPTH = 64
#: Largest value encode() builds (the kernel caps map values far lower); guards against corrupt sizes.
MAX_VALUE_SIZE = 1 << 28


class BTFValueError(CoreBPFError, ValueError):
    """A value does not fit its BTF type, or the bytes are too short for it."""


class EnumMember(int):
    """An enum value: an ``int`` that also carries the enumerator's ``name`` (None if unnamed)."""

    name: Optional[str]
    enum: str

    def __new__(cls, value: int, name: Optional[str], enum: str = "") -> "EnumMember":
        obj = super().__new__(cls, value)
        obj.name = name
        obj.enum = enum
        return obj

    def __repr__(self) -> str:
        return f"{self.name}({int(self)})" if self.name else f"{self.enum or 'enum'}({int(self)})"

    def __str__(self) -> str:
        return self.name if self.name else str(int(self))

    def __reduce__(self):
        return (EnumMember, (int(self), self.name, self.enum))


class StructValue(dict):
    """A decoded struct or union: a ``dict`` of member name -> value, also readable as attributes."""

    __slots__ = ("_type_name",)

    def __init__(self, *args: Any, type_name: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._type_name = type_name

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self._type_name or 'struct'} has no member {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_type_name":
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *[k for k in self if isinstance(k, str) and k.isidentifier()]]

    def __repr__(self) -> str:
        return f"{self._type_name or 'struct'}({', '.join(f'{k}={v!r}' for k, v in self.items())})"


def _order(t: Type) -> str:
    btf = t.btf
    return btf.byteorder if btf is not None else "little"


def _int_size(size: int, what: str) -> int:
    if size not in (1, 2, 4, 8, 16):
        raise BTFValueError(f"{what}: unsupported integer size {size}")
    return size


_FLOAT_FMT = {2: "e", 4: "f", 8: "d"}


def _bitfield_params(m: Member) -> Optional[tuple[int, int, bool]]:
    """(bit offset, bit size, signed) if ``m`` is a bitfield (kind_flag or legacy INT form)."""
    r = m.type.resolve()
    if m.bitfield_size:
        signed = isinstance(r, Int) and r.signed or isinstance(r, Enum) and r.signed
        return m.bit_offset, m.bitfield_size, bool(signed)
    if isinstance(r, Int) and (r.bits != r.size * 8 or r.offset):
        return m.bit_offset + r.offset, r.bits, r.signed
    return None


def _read_bits(data: bytes | memoryview, base: int, bit_off: int, nbits: int, signed: bool, order: str) -> int:
    first = bit_off // 8
    last = (bit_off + nbits + 7) // 8
    if base + last > len(data):
        raise BTFValueError(f"bitfield at bit {bit_off} needs {base + last} bytes, have {len(data)}")
    raw = int.from_bytes(data[base + first:base + last], order)
    nbytes = last - first
    shift = bit_off % 8 if order == "little" else nbytes * 8 - bit_off % 8 - nbits
    v = (raw >> shift) & ((1 << nbits) - 1)
    if signed and nbits and v >> (nbits - 1):
        v -= 1 << nbits
    return v


def _write_bits(buf: bytearray, base: int, bit_off: int, nbits: int, value: int, order: str) -> None:
    first = bit_off // 8
    last = (bit_off + nbits + 7) // 8
    nbytes = last - first
    mask = (1 << nbits) - 1
    shift = bit_off % 8 if order == "little" else nbytes * 8 - bit_off % 8 - nbits
    raw = int.from_bytes(buf[base + first:base + last], order)
    raw = (raw & ~(mask << shift)) | ((value & mask) << shift)
    buf[base + first:base + last] = raw.to_bytes(nbytes, order)


def _is_char_array(t: Array) -> bool:
    e = t.elem_type.resolve()
    return isinstance(e, Int) and e.size == 1 and e.is_char and not e.is_bool


def decode(t: Type, data: bytes | bytearray | memoryview, *, offset: int = 0, chars: str = "str") -> Any:
    """Decode the bytes of type ``t`` at ``offset`` of ``data`` into Python values (see the module doc).

    ``chars``: ``"str"`` (char arrays as NUL-trimmed str), ``"bytes"`` (NUL-trimmed bytes) or
    ``"raw"`` (all the array's bytes).
    """
    if chars not in ("str", "bytes", "raw"):
        raise ValueError("chars must be 'str', 'bytes' or 'raw'")
    return _decode(t, memoryview(data).cast("B") if not isinstance(data, bytes) else data, offset, chars, 0)


def _decode(t: Type, data: Any, off: int, chars: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise BTFValueError(f"type [{t.id}] nests deeper than {_MAX_DEPTH} levels")
    r = t.resolve()
    size = r.size if not isinstance(r, Void) else 0
    if off + size > len(data):
        raise BTFValueError(f"{t.format_c()} needs {size} bytes at offset {off}, the buffer has {len(data)}")
    order = _order(r)
    if isinstance(r, Int):
        v = int.from_bytes(data[off:off + _int_size(r.size, r.name)], order, signed=r.signed)
        return bool(v) if r.is_bool else v
    if isinstance(r, Enum):
        v = int.from_bytes(data[off:off + _int_size(r.size, r.name)], order, signed=r.signed)
        return EnumMember(v, r.name_of(v), r.name)
    if isinstance(r, Pointer):
        return int.from_bytes(data[off:off + r.size], order)
    if isinstance(r, Float):
        fmt = _FLOAT_FMT.get(r.size)
        if fmt is None:
            return bytes(data[off:off + r.size])  # long double: keep the bytes
        return struct.unpack_from(("<" if order == "little" else ">") + fmt, data, off)[0]
    if isinstance(r, Array):
        if _is_char_array(r) and chars != "raw":
            raw = bytes(data[off:off + r.nelems])
            nul = raw.find(b"\0")
            if nul >= 0:
                raw = raw[:nul]
            return raw.decode("utf-8", "surrogateescape") if chars == "str" else raw
        elem = r.elem_type
        esize = elem.size
        return [_decode(elem, data, off + i * esize, chars, depth + 1) for i in range(r.nelems)]
    if isinstance(r, Composite):
        out = StructValue(type_name=r.format_c())
        _decode_members(r, data, off, chars, depth, out)
        return out
    raise BTFValueError(f"cannot decode a value of {t.format_c()!r} ({r.kind.name})")


def _decode_members(r: Composite, data: Any, off: int, chars: str, depth: int, out: StructValue) -> None:
    order = _order(r)
    for m in r.members:
        bf = _bitfield_params(m)
        if bf is not None:
            if m.name:
                v = _read_bits(data, off, bf[0], bf[1], bf[2], order)
                mt = m.type.resolve()
                out[m.name] = EnumMember(v, mt.name_of(v), mt.name) if isinstance(mt, Enum) else v
            continue
        moff = off + m.bit_offset // 8
        if not m.name:
            inner = m.type.resolve()
            if isinstance(inner, Composite):
                _decode_members(inner, data, moff, chars, depth + 1, out)
            continue
        out[m.name] = _decode(m.type, data, moff, chars, depth + 1)


def encode(t: Type, value: Any) -> bytes:
    """Encode ``value`` as type ``t`` (the inverse of :func:`decode`)."""
    r = t.resolve()
    if r.size > MAX_VALUE_SIZE:
        raise BTFValueError(f"{t.format_c()}: {r.size} bytes is more than a value can be ({MAX_VALUE_SIZE})")
    buf = bytearray(r.size)
    _encode(t, value, buf, 0, 0)
    return bytes(buf)


def _encode(t: Type, value: Any, buf: bytearray, off: int, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise BTFValueError(f"type [{t.id}] nests deeper than {_MAX_DEPTH} levels")
    r = t.resolve()
    order = _order(r)
    if isinstance(r, (Int, Enum, Pointer)):
        if isinstance(r, Enum) and isinstance(value, str):
            try:
                value = r.value_of(value)
            except KeyError as e:
                raise BTFValueError(str(e.args[0])) from None
        if isinstance(value, bool) or isinstance(value, (int, np.integer)):
            v = int(value)
        else:
            raise BTFValueError(f"{t.format_c()}: expected an int, got {type(value).__name__}")
        signed = getattr(r, "signed", False)
        size = r.size
        lo, hi = (-(1 << (8 * size - 1)), 1 << (8 * size - 1)) if signed else (0, 1 << (8 * size))
        if isinstance(r, Enum) and not lo <= v < hi:  # enums accept either signedness of the same bits
            lo, hi = -(1 << (8 * size - 1)), 1 << (8 * size)
        if not lo <= v < hi:
            raise BTFValueError(f"{t.format_c()}: {v} does not fit in {size} bytes")
        buf[off:off + size] = (v & ((1 << (8 * size)) - 1)).to_bytes(size, order)
        return
    if isinstance(r, Float):
        fmt = _FLOAT_FMT.get(r.size)
        if fmt is None:
            raw = bytes(value)
            if len(raw) != r.size:
                raise BTFValueError(f"{t.format_c()}: expected {r.size} raw bytes")
            buf[off:off + r.size] = raw
        else:
            struct.pack_into(("<" if order == "little" else ">") + fmt, buf, off, float(value))
        return
    if isinstance(r, Array):
        if _is_char_array(r) and isinstance(value, (str, bytes, bytearray)):
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
            if len(raw) > r.nelems:
                raise BTFValueError(f"{t.format_c()}: {len(raw)} bytes do not fit in {r.nelems}")
            buf[off:off + len(raw)] = raw
            return
        items = list(value)
        if len(items) > r.nelems:
            raise BTFValueError(f"{t.format_c()}: {len(items)} elements do not fit in {r.nelems}")
        elem = r.elem_type
        esize = elem.size
        for i, item in enumerate(items):
            _encode(elem, item, buf, off + i * esize, depth + 1)
        return
    if isinstance(r, Composite):
        if not isinstance(value, Mapping):
            raise BTFValueError(f"{t.format_c()}: expected a mapping of member values, got {type(value).__name__}")
        used: set[str] = set()
        _encode_members(r, value, buf, off, depth, used)
        unknown = [k for k in value if k not in used]
        if unknown:
            raise BTFValueError(f"{t.format_c()} has no member(s) {', '.join(map(repr, unknown))}")
        return
    raise BTFValueError(f"cannot encode a value of {t.format_c()!r} ({r.kind.name})")


def _encode_members(r: Composite, value: Mapping, buf: bytearray, off: int, depth: int, used: set[str]) -> None:
    order = _order(r)
    for m in r.members:
        if not m.name:
            inner = m.type.resolve()
            if isinstance(inner, Composite) and _bitfield_params(m) is None:
                _encode_members(inner, value, buf, off + m.bit_offset // 8, depth + 1, used)
            continue
        if m.name not in value:
            continue
        used.add(m.name)
        v = value[m.name]
        bf = _bitfield_params(m)
        if bf is not None:
            bit_off, nbits, signed = bf
            mt = m.type.resolve()
            if isinstance(mt, Enum) and isinstance(v, str):
                v = mt.value_of(v)
            v = int(v)
            lo, hi = (-(1 << (nbits - 1)), 1 << (nbits - 1)) if signed else (0, 1 << nbits)
            if not lo <= v < hi:
                raise BTFValueError(f"{r.format_c()}.{m.name}: {v} does not fit in a {nbits}-bit field")
            _write_bits(buf, off, bit_off, nbits, v, order)
            continue
        _encode(m.type, v, buf, off + m.bit_offset // 8, depth + 1)


# -- numpy ---------------------------------------------------------------------------------------

def _scalar_dtype(r: Type, order: str) -> Optional[np.dtype]:
    bo = "<" if order == "little" else ">"
    if isinstance(r, Int):
        if r.is_bool and r.size == 1:
            return np.dtype("?")
        if r.size in (1, 2, 4, 8):
            return np.dtype(f"{bo}{'i' if r.signed else 'u'}{r.size}")
        return np.dtype(f"V{r.size}")
    if isinstance(r, Enum):
        return np.dtype(f"{bo}{'i' if r.signed else 'u'}{r.size}") if r.size in (1, 2, 4, 8) else None
    if isinstance(r, Pointer):
        return np.dtype(f"{bo}u{r.size}")
    if isinstance(r, Float):
        return np.dtype(f"{bo}f{r.size}") if r.size in (2, 4, 8) else np.dtype(f"V{r.size}")
    return None


def numpy_dtype(t: Type, *, chars: str = "S") -> np.dtype:
    """A numpy dtype with the layout of ``t`` (offsets and itemsize exact).

    Structs and unions become structured dtypes (union members overlap), char arrays ``S<n>``
    (``chars="u1"`` for uint8 arrays), other arrays subarrays. Bitfields are skipped; their
    (name, bit offset, bit size, signed) are listed in ``dtype.metadata["bitfields"]``.
    """
    return _dtype(t, chars, 0)


def _dtype(t: Type, chars: str, depth: int) -> np.dtype:
    if depth > _MAX_DEPTH:
        raise BTFValueError(f"type [{t.id}] nests deeper than {_MAX_DEPTH} levels")
    r = t.resolve()
    order = _order(r)
    sd = _scalar_dtype(r, order)
    if sd is not None:
        return sd
    if isinstance(r, Array):
        if _is_char_array(r) and chars == "S":
            return np.dtype(f"S{r.nelems}") if r.nelems else np.dtype((np.uint8, (0,)))
        return np.dtype((_dtype(r.elem_type, chars, depth + 1), (r.nelems,)))
    if isinstance(r, Composite):
        names: list[str] = []
        formats: list[np.dtype] = []
        offsets: list[int] = []
        bitfields: list[tuple[str, int, int, bool]] = []
        _collect(r, 0, chars, depth, names, formats, offsets, bitfields)
        spec = {"names": names, "formats": formats, "offsets": offsets, "itemsize": r.size}
        return np.dtype(spec, metadata={"bitfields": bitfields, "type": r.format_c()})
    raise BTFValueError(f"no numpy dtype for {t.format_c()!r} ({r.kind.name})")


def _collect(r: Composite, base: int, chars: str, depth: int, names: list[str], formats: list[np.dtype],
             offsets: list[int], bitfields: list[tuple[str, int, int, bool]]) -> None:
    for m in r.members:
        bf = _bitfield_params(m)
        if bf is not None:
            if m.name:
                bitfields.append((m.name, base * 8 + bf[0], bf[1], bf[2]))
            continue
        off = base + m.bit_offset // 8
        if not m.name:
            inner = m.type.resolve()
            if isinstance(inner, Composite):
                _collect(inner, off, chars, depth + 1, names, formats, offsets, bitfields)
            continue
        if m.name in names:
            continue
        names.append(m.name)
        formats.append(_dtype(m.type, chars, depth + 1))
        offsets.append(off)
