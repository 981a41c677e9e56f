"""Typed events: what one record holds, as a BTF type or a numpy dtype.

A :class:`RecordType` turns the raw bytes of a record into a Python value (through
:func:`corebpf.btf.values.decode`) and a batch of records into a numpy structured array (through
:func:`corebpf.btf.values.numpy_dtype`). It can be built from a BTF type (``btf.find("event")``),
from a BTF object and a type name, or from a plain numpy dtype when there is no BTF at hand.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from ..btf import values as _values
from ..btf.types import Type
from ..errors import CoreBPFError

RecordTypeLike = Union["RecordType", Type, np.dtype, str]


class RecordType:
    """The type of every record of a ring or perf buffer.

    ``RecordType(btf_type)`` decodes through BTF (structs become :class:`~corebpf.btf.values.StructValue`,
    char arrays ``str``, enums :class:`~corebpf.btf.values.EnumMember`); ``RecordType(np.dtype(...))``
    decodes each record to a ``dict`` of its fields. ``dtype`` lays out a batch as a structured array.
    """

    __slots__ = ("btf_type", "dtype", "size", "name", "_chars")

    def __init__(self, t: "Type | np.dtype | str", *, chars: str = "str") -> None:
        """``t``: a BTF :class:`~corebpf.btf.types.Type`, a numpy dtype, or a numpy dtype string."""
        self._chars = chars
        if isinstance(t, Type):
            resolved = t.resolve()
            try:
                size = resolved.size
            except CoreBPFError as exc:
                raise TypeError(f"{t.format_c()} has no size: records need a sized type") from exc
            self.btf_type: Optional[Type] = t
            self.dtype: np.dtype = _values.numpy_dtype(t)
            self.size: int = int(size)
            self.name: str = t.format_c()
        else:
            self.btf_type = None
            self.dtype = np.dtype(t)
            self.size = self.dtype.itemsize
            self.name = str(self.dtype)

    @classmethod
    def from_btf(cls, btf: Any, name: str, *, chars: str = "str") -> "RecordType":
        """The record type named ``name`` (struct, union or typedef) in ``btf``."""
        try:
            t = btf.find(name)
        except KeyError:
            raise ValueError(f"no type named {name!r} in this BTF: give the struct the program writes "
                             "into the buffer (e.g. 'event' for 'struct event')") from None
        return cls(t, chars=chars)

    def decode(self, data: "bytes | bytearray | memoryview") -> Any:
        """One record's bytes as a Python value (extra trailing bytes, e.g. padding, are ignored)."""
        if len(data) < self.size:
            raise _values.BTFValueError(f"a {self.name} record needs {self.size} bytes, this one has {len(data)}")
        if self.btf_type is not None:
            return _values.decode(self.btf_type, data, chars=self._chars)
        row = np.frombuffer(data, dtype=self.dtype, count=1)[0]
        if self.dtype.names is None:
            return row.item()
        return {name: row[name].item() if row[name].ndim == 0 else row[name].copy() for name in self.dtype.names}

    def __repr__(self) -> str:
        return f"RecordType({self.name}, {self.size} bytes)"


def as_record_type(value: "RecordTypeLike | None") -> Optional[RecordType]:
    """Normalise what users pass as ``record_type=`` (None stays None)."""
    if value is None or isinstance(value, RecordType):
        return value
    return RecordType(value)


__all__ = ["RecordType", "RecordTypeLike", "as_record_type"]
