"""BPF maps: :class:`Map` (a mutable mapping of bytes over a kernel map) and the map type table."""

from .._sys._generated import MapType
from .info import MapInfo
from .map import Map
from .percpu import possible_cpus
from .types import Kind, UpdateFlags

__all__ = ["Map", "MapType", "MapInfo", "UpdateFlags", "Kind", "possible_cpus"]
