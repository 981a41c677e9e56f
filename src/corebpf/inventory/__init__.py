"""Every eBPF program, map, link and BTF object loaded on this host, with owner processes and pins.

A psutil-like API of small frozen records::

    >>> from corebpf import inventory
    >>> for prog in inventory.programs():
    ...     print(prog.id, prog.type, prog.name, [o.comm for o in prog.owners], prog.pins)
    >>> snap = inventory.snapshot()          # everything at once: one /proc scan, one bpffs walk
    >>> snap.programs_by_id[42].map_ids

Listing needs CAP_SYS_ADMIN (the kernel refuses the id walk otherwise); the error says so.
Objects that vanish during a walk are skipped. ``owners=False`` / ``pins=False`` skip the ``/proc``
scan / bpffs walk, leaving those fields None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Optional

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from .owners import OwnerIndex
    from .pins import PinIndex
    from .records import BTFRecord, LinkRecord, MapRecord, ProcessRecord, ProgramRecord, Record
    from .snapshots import Snapshot

# public name -> submodule defining it, imported on first use: ``corebpf doctor`` counts objects with
# .listing and .owners alone, without the record and attach classes (dozens of dataclasses to build).
# (The snapshot code lives in .snapshots: a submodule named like the snapshot() function below would
# replace it in this namespace when first imported.)
_LAZY = {
    **dict.fromkeys(("LinkAttach", "RawTracepointAttach", "TracingAttach", "CgroupAttach", "IterAttach",
                     "NetnsAttach", "XDPAttach", "TCXAttach", "NetkitAttach", "StructOpsAttach", "SockmapAttach",
                     "NetfilterAttach", "KprobeMultiAttach", "UprobeMultiAttach", "PerfEventAttach"), "attach"),
    "boot_ns_to_datetime": "clock", "MapEntry": "dump", "dump_map": "dump",
    "OwnerIndex": "owners", "scan_owners": "owners", "Owner": "owners",
    "Mount": "pins", "PinIndex": "pins", "bpffs_mounts": "pins", "pinned_object": "pins", "scan_pins": "pins",
    **dict.fromkeys(("BTFRecord", "LinkRecord", "MapRecord", "ProcessRecord", "ProgramRecord", "Record"), "records"),
    "Snapshot": "snapshots", "take_snapshot": "snapshots", "with_context": "snapshots",
    "READERS": "walk", "all_btfs": "walk", "all_links": "walk", "all_maps": "walk", "all_programs": "walk",
    "read_one": "walk",
}


_SUBMODULES = frozenset({"attach", "clock", "dump", "fdinfo", "fullname", "listing", "names", "owners", "pins",
                         "records", "snapshots", "walk"})


# ``inventory.pins.identify(...)`` works without importing .pins first
__getattr__ = lazy_exports(__name__, globals(), _LAZY, _SUBMODULES)


_KIND_NAMES = {"prog": "program", "map": "map", "link": "link", "btf": "BTF object"}


def _context(kinds: list[str], owners: bool, pins: bool) -> tuple[Optional[OwnerIndex], Optional[PinIndex]]:
    from .owners import scan_owners
    from .pins import scan_pins

    pin_index = scan_pins() if pins else None
    owner_index = scan_owners(kinds) if owners else None
    return owner_index, pin_index


def programs(*, owners: bool = True, pins: bool = True) -> list[ProgramRecord]:
    """Every loaded program, ascending by id. Owners include processes holding a link to it."""
    from .snapshots import with_context
    from .walk import all_programs

    return with_context(all_programs(), "prog", *_context(["prog"], owners, pins))


def maps(*, owners: bool = True, pins: bool = True) -> list[MapRecord]:
    """Every loaded map, ascending by id."""
    from .snapshots import with_context
    from .walk import all_maps

    return with_context(all_maps(), "map", *_context(["map"], owners, pins))


def links(*, owners: bool = True, pins: bool = True) -> list[LinkRecord]:
    """Every BPF link, ascending by id, with its attach point decoded."""
    from .snapshots import with_context
    from .walk import all_links

    return with_context(all_links(), "link", *_context(["link"], owners, pins))


def btfs(*, owners: bool = True, pins: bool = True) -> list[BTFRecord]:
    """Every loaded BTF object (vmlinux, modules, program BTF), ascending by id."""
    from .snapshots import with_context
    from .walk import all_btfs

    return with_context(all_btfs(), "btf", *_context(["btf"], owners, pins))


def _get(kind: str, obj_id: int, owners: bool, pins: bool) -> Record:
    from ..errors import BPFNotFoundError
    from .snapshots import with_context
    from .walk import READERS, read_one

    record = read_one(kind, obj_id, READERS[kind])
    if record is None:
        raise BPFNotFoundError(2, f"BPF_{kind.upper()}_GET_FD_BY_ID",
                               f"list them with `corebpf {kind} list`" if kind != "btf" else "",
                               detail=f"no {_KIND_NAMES[kind]} with id {obj_id}")
    return with_context([record], kind, *_context([kind], owners, pins))[0]  # type: ignore[list-item]


def get_program(prog_id: int, *, owners: bool = True, pins: bool = True) -> ProgramRecord:
    """The program with id ``prog_id``; raises :class:`~corebpf.errors.BPFNotFoundError` if none."""
    return _get("prog", prog_id, owners, pins)  # type: ignore[return-value]


def get_map(map_id: int, *, owners: bool = True, pins: bool = True) -> MapRecord:
    """The map with id ``map_id``; raises :class:`~corebpf.errors.BPFNotFoundError` if none."""
    return _get("map", map_id, owners, pins)  # type: ignore[return-value]


def get_link(link_id: int, *, owners: bool = True, pins: bool = True) -> LinkRecord:
    """The link with id ``link_id``; raises :class:`~corebpf.errors.BPFNotFoundError` if none."""
    return _get("link", link_id, owners, pins)  # type: ignore[return-value]


def get_btf(btf_id: int, *, owners: bool = True, pins: bool = True) -> BTFRecord:
    """The BTF object with id ``btf_id``; raises :class:`~corebpf.errors.BPFNotFoundError` if none."""
    return _get("btf", btf_id, owners, pins)  # type: ignore[return-value]


def processes() -> tuple[ProcessRecord, ...]:
    """Every process holding BPF objects (programs, also through links/perf events, maps, links, BTF),
    most objects first."""
    from .snapshots import take_snapshot

    return take_snapshot(owners=True, pins=False).processes()


def snapshot(*, owners: bool = True, pins: bool = True, ids: Optional[Mapping[str, Iterable[int]]] = None) -> Snapshot:
    """Every program, map, link and BTF object at once, with id indexes (one /proc scan, one bpffs walk);
    ``ids`` (kind -> ids listed earlier) limits it to those objects."""
    from .snapshots import take_snapshot

    return take_snapshot(owners=owners, pins=pins, ids=ids)


__all__ = [
    "programs", "maps", "links", "btfs", "processes", "get_program", "get_map", "get_link", "get_btf", "snapshot",
    "Snapshot", "ProgramRecord", "MapRecord", "LinkRecord", "BTFRecord", "Owner", "ProcessRecord", "Record",
    "LinkAttach", "RawTracepointAttach", "TracingAttach", "CgroupAttach", "IterAttach", "NetnsAttach", "XDPAttach",
    "TCXAttach", "NetkitAttach", "StructOpsAttach", "SockmapAttach", "NetfilterAttach", "KprobeMultiAttach",
    "UprobeMultiAttach", "PerfEventAttach",
    "Mount", "bpffs_mounts", "pinned_object", "scan_pins", "scan_owners", "OwnerIndex", "PinIndex",
    "boot_ns_to_datetime", "MapEntry", "dump_map",
]
