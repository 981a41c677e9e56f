"""struct_ops (``SEC(".struct_ops.link")``): register a struct_ops map (e.g. a TCP congestion control)
with a BPF link, so closing the link unregisters it (Linux >= 6.4; older kernels register on the map
update itself and unregister on element delete)."""

from __future__ import annotations

from typing import Any

from .._sys import ops
from .._sys._generated import AttachType
from .link import Link, _fileno

BPF_F_LINK = 1 << 13


def struct_ops(map_: Any) -> Link:
    """Register struct_ops map ``map_`` (created with ``BPF_F_LINK`` and its value already written).

    Without ``BPF_F_LINK`` the map was registered by its update: the link then unregisters it on close
    by deleting key 0 (method ``"map_update"``).
    """
    flags = getattr(getattr(map_, "info", None), "flags", BPF_F_LINK)
    name = getattr(map_, "name", "") or f"fd {_fileno(map_)}"
    if not flags & BPF_F_LINK:
        key = (0).to_bytes(4, "little")
        return Link(f"struct_ops {name}", "map_update", None, [lambda: ops.map_delete_elem(_fileno(map_), key)])
    fd = ops.link_create(_fileno(map_), 0, AttachType.STRUCT_OPS)
    return Link(f"struct_ops {name}", "bpf_link", fd)


def update(link: Link, map_: Any) -> None:
    """Switch a struct_ops link to another map of the same struct type (``BPF_LINK_UPDATE`` with a map fd)."""
    ops.link_update(link.fileno(), _fileno(map_))


__all__ = ["struct_ops", "update", "BPF_F_LINK"]
