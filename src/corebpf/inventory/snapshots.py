"""Everything loaded at one moment: programs, maps, links and BTF with owners and pins, indexed by id.

One id walk per kind, one ``/proc`` scan and one bpffs walk serve every object, so a snapshot costs
about the same as listing owners for a single object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Iterable, Mapping, Optional, Sequence, TypeVar

from .clock import boot_offset_ns
from .owners import OwnerIndex, scan_owners
from .pins import PinIndex, scan_pins
from .records import BTFRecord, LinkRecord, MapRecord, ProcessRecord, ProgramRecord
from .walk import all_btfs, all_links, all_maps, all_programs

R = TypeVar("R", ProgramRecord, MapRecord, LinkRecord, BTFRecord)


def with_context(records: Iterable[R], kind: str, owners: Optional[OwnerIndex],
                 pins: Optional[PinIndex]) -> list[R]:
    """``records`` with their ``owners``/``pins`` filled from the indexes (left None when not given)."""
    if owners is None and pins is None:
        return list(records)
    return [dataclasses.replace(
        r,
        owners=owners.of(kind, r.id) if owners is not None else None,
        pins=pins.of(kind, r.id) if pins is not None else None) for r in records]


def _by_id(records: Sequence[R]) -> Mapping[int, R]:
    return MappingProxyType({r.id: r for r in records})


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The eBPF objects loaded on the host at ``taken_at`` (UTC), with id indexes.

    ``owners_collected`` / ``pins_collected`` say whether the records' ``owners``/``pins`` were filled.
    """

    programs: tuple[ProgramRecord, ...]
    maps: tuple[MapRecord, ...]
    links: tuple[LinkRecord, ...]
    btfs: tuple[BTFRecord, ...]
    taken_at: datetime
    owners_collected: bool = True
    pins_collected: bool = True
    programs_by_id: Mapping[int, ProgramRecord] = field(init=False, repr=False)
    maps_by_id: Mapping[int, MapRecord] = field(init=False, repr=False)
    links_by_id: Mapping[int, LinkRecord] = field(init=False, repr=False)
    btfs_by_id: Mapping[int, BTFRecord] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "programs_by_id", _by_id(self.programs))
        object.__setattr__(self, "maps_by_id", _by_id(self.maps))
        object.__setattr__(self, "links_by_id", _by_id(self.links))
        object.__setattr__(self, "btfs_by_id", _by_id(self.btfs))

    def links_of(self, prog_id: int) -> tuple[LinkRecord, ...]:
        """The links that run program ``prog_id``."""
        return tuple(link for link in self.links if link.prog_id == prog_id)

    def programs_using(self, map_id: int) -> tuple[ProgramRecord, ...]:
        """The programs whose map ids include ``map_id``."""
        return tuple(p for p in self.programs if map_id in p.map_ids)

    def processes(self) -> tuple[ProcessRecord, ...]:
        """Every process holding at least one object, most objects first (empty if owners were not
        collected)."""
        found: dict[int, tuple[str, int, dict[str, set[int]]]] = {}
        for attr, records in (("prog", self.programs), ("map", self.maps), ("link", self.links),
                              ("btf", self.btfs)):
            for rec in records:
                for o in rec.owners or ():
                    entry = found.setdefault(o.pid, (o.comm, o.uid, {"prog": set(), "map": set(), "link": set(),
                                                                     "btf": set()}))
                    entry[2][attr].add(rec.id)
        procs = [ProcessRecord(pid, comm, uid, *(tuple(sorted(ids[k])) for k in ("prog", "map", "link", "btf")))
                 for pid, (comm, uid, ids) in found.items()]
        return tuple(sorted(procs, key=lambda p: (-p.total, p.pid)))

    def summary(self) -> dict[str, object]:
        """JSON-ready totals: objects per kind and per type, pinned objects, owner processes, and programs
        that no process, pin or link holds (attached the legacy way, or held by a prog array or struct_ops
        map): None where owners/pins were not collected."""
        def by_type(records: Sequence[ProgramRecord] | Sequence[MapRecord] | Sequence[LinkRecord]) -> dict[str, int]:
            counts: dict[str, int] = {}
            for r in records:
                counts[r.type] = counts.get(r.type, 0) + 1
            return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

        everything = (*self.programs, *self.maps, *self.links, *self.btfs)
        return {
            "taken_at": self.taken_at.isoformat(),
            **self.counts(),
            "programs_by_type": by_type(self.programs),
            "maps_by_type": by_type(self.maps),
            "links_by_type": by_type(self.links),
            "pinned": sum(1 for r in everything if r.pins) if self.pins_collected else None,
            "owner_processes": len(self.processes()) if self.owners_collected else None,
            "programs_held_only_by_kernel": (sum(1 for p in self.programs if not p.owners and not p.pins
                                     and not self.links_of(p.id))
                                 if self.owners_collected and self.pins_collected else None),
        }

    def counts(self) -> dict[str, int]:
        """Number of objects per kind: ``{"programs": .., "maps": .., "links": .., "btfs": ..}``."""
        return {"programs": len(self.programs), "maps": len(self.maps), "links": len(self.links),
                "btfs": len(self.btfs)}


def take_snapshot(*, owners: bool = True, pins: bool = True,
                  ids: Optional[Mapping[str, Iterable[int]]] = None) -> Snapshot:
    """Walk every kind once, then (with no inventory fds left open) scan processes and pins.

    ``ids`` (kind -> ids, e.g. taken with :func:`corebpf._sys.ops.iter_ids` before creating objects of
    one's own) limits the records to those objects: the ones created since are left out."""
    taken_at = datetime.now(timezone.utc)

    def only(kind: str) -> Optional[Iterable[int]]:
        return None if ids is None else ids.get(kind, ())  # a kind left out: none of it

    progs = all_programs(boot_offset_ns(), only("prog"))
    maps_ = all_maps(only("map"))
    links = all_links(only("link"))
    btfs = all_btfs(only("btf"))
    # pins open and close their own fds, so the /proc scan that follows sees none of ours
    pin_index = scan_pins() if pins else None
    owner_index = scan_owners() if owners else None
    return Snapshot(
        programs=tuple(with_context(progs, "prog", owner_index, pin_index)),
        maps=tuple(with_context(maps_, "map", owner_index, pin_index)),
        links=tuple(with_context(links, "link", owner_index, pin_index)),
        btfs=tuple(with_context(btfs, "btf", owner_index, pin_index)),
        taken_at=taken_at, owners_collected=owners, pins_collected=pins)


__all__ = ["Snapshot", "take_snapshot", "with_context"]
