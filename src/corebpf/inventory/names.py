"""Kernel enum numbers to names, tolerant of values newer than corebpf's generated tables."""

from __future__ import annotations

import enum
from functools import lru_cache

from .._sys._generated import AttachType


def enum_name(enum_cls: type[enum.IntEnum], value: int) -> str:
    """``enum_cls(value).name``, or ``"UNKNOWN_<value>"`` for a value this corebpf does not know."""
    name = _names(enum_cls).get(value)
    return name if name is not None else f"UNKNOWN_{value}"


@lru_cache(maxsize=None)
def _names(enum_cls: type[enum.IntEnum]) -> dict[int, str]:
    # The UAPI keeps old spellings as aliases (MAP_TYPE_CGROUP_STORAGE_DEPRECATED == CGROUP_STORAGE);
    # prefer the current name.
    names: dict[int, str] = {}
    for name, member in enum_cls.__members__.items():
        if int(member) not in names or names[int(member)].endswith("_DEPRECATED"):
            names[int(member)] = name
    return names


def attach_type_name(value: int) -> str:
    """The ``enum bpf_attach_type`` name of ``value`` (e.g. ``"TCX_INGRESS"``)."""
    return enum_name(AttachType, value)


__all__ = ["enum_name", "attach_type_name"]
