"""The small immutable records the inventory returns: one per loaded program, map, link and BTF object.

Records are plain frozen dataclasses so they compare, print and serialise (``dataclasses.asdict``)
without surprises. Kernel enums are given as their names (``"XDP"``, ``"HASH"``) with the raw number
alongside, so a kernel newer than corebpf's tables still yields a usable record (``"UNKNOWN_42"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Union

from .attach import LinkAttach
from .owners import Owner  # defined there: the owner scan needs no record classes


@dataclass(frozen=True)
class ProgramRecord:
    """A loaded eBPF program (``struct bpf_prog_info`` plus owners and pins).

    ``load_time`` is wall-clock (UTC, timezone-aware), converted from the kernel's boot-based
    ``load_time_ns``. Run statistics are zero unless ``kernel.bpf_stats_enabled`` is on (or a
    process holds a ``BPF_ENABLE_STATS`` fd). ``owners``/``pins`` are None when not collected.
    ``name`` is what the kernel keeps (at most 15 bytes); ``full_name`` is the entry function's BTF
    name when that one was cut (as bpftool shows it), else the same as ``name``.
    """

    id: int
    name: str
    full_name: str
    type: str
    type_id: int
    tag: str
    gpl: bool
    map_ids: tuple[int, ...]
    load_time: datetime
    load_time_ns: int
    created_by_uid: int
    btf_id: int
    xlated_size: int
    jited_size: int
    verified_insns: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    attach_btf_id: int
    attach_btf_obj_id: int
    ifindex: int
    nr_func_info: int
    memlock: Optional[int] = None
    owners: Optional[tuple[Owner, ...]] = None
    pins: Optional[tuple[str, ...]] = None

    @property
    def jited(self) -> bool:
        """True when the program was JIT-compiled to native code."""
        return self.jited_size > 0

    @property
    def xlated_insns(self) -> int:
        """Number of 8-byte slots in the translated program."""
        return self.xlated_size // 8


@dataclass(frozen=True)
class MapRecord:
    """A loaded eBPF map (``struct bpf_map_info`` plus ``frozen``/``memlock`` from fdinfo, owners, pins)."""

    id: int
    name: str
    type: str
    type_id: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    map_extra: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    btf_vmlinux_id: int
    ifindex: int
    frozen: Optional[bool] = None
    memlock: Optional[int] = None
    owners: Optional[tuple[Owner, ...]] = None
    pins: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class LinkRecord:
    """A BPF link: which program runs where. ``attach`` is decoded per link type (see ``attach.py``);
    ``attach.target`` is a one-line description of the attach point."""

    id: int
    type: str
    type_id: int
    prog_id: int
    attach: LinkAttach
    owners: Optional[tuple[Owner, ...]] = None
    pins: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class BTFRecord:
    """A loaded BTF object: vmlinux, a module's BTF (``kernel_btf``) or one loaded with a program."""

    id: int
    name: str
    size: int
    kernel_btf: bool
    owners: Optional[tuple[Owner, ...]] = None
    pins: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class ProcessRecord:
    """One process and the BPF objects it holds (ids ascending, each once). ``prog_ids`` counts programs
    held directly, through a link or through a perf event; the ``Owner`` entries on each object say how."""

    pid: int
    comm: str
    uid: int
    prog_ids: tuple[int, ...]
    map_ids: tuple[int, ...]
    link_ids: tuple[int, ...]
    btf_ids: tuple[int, ...]

    @property
    def total(self) -> int:
        """Number of objects held, all kinds together."""
        return len(self.prog_ids) + len(self.map_ids) + len(self.link_ids) + len(self.btf_ids)


Record = Union[ProgramRecord, MapRecord, LinkRecord, BTFRecord]

__all__ = ["Owner", "ProcessRecord", "ProgramRecord", "MapRecord", "LinkRecord", "BTFRecord", "Record"]
