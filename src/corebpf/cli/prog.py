"""``corebpf prog``: list, show and disassemble the eBPF programs loaded on this host (like ``bpftool prog``).

JSON (``--json``): ``list`` and ``show`` without an id print an array of program objects, ``show ID`` one
object. A program object has every field of :class:`corebpf.inventory.ProgramRecord` (``id``, ``name``,
``full_name``, ``type``, ``type_id``, ``tag``, ``gpl``, ``map_ids``, ``load_time`` (ISO 8601, UTC),
``load_time_ns``, ``created_by_uid``, ``btf_id``, ``xlated_size``, ``jited_size``, ``verified_insns``,
``run_time_ns``, ``run_cnt``, ``recursion_misses``, ``attach_btf_id``, ``attach_btf_obj_id``, ``ifindex``,
``nr_func_info``, ``memlock``, ``owners`` (``[{pid, comm, uid, fds, via, link_id}]``), ``pins`` (paths))
plus ``jited`` (bool); ``show ID`` adds ``link_ids`` (the links that run it). ``dump --json`` prints ``{"id": ID, "insns": [lines]}``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import click

from ..errors import BPFNotFoundError
from ._output import Column, echo_json, emit, fail, json_option, to_jsonable


def owners_text(owners: Optional[Sequence[object]]) -> str:
    """``comm(pid)`` for each owning process, once per pid; links and perf events are marked."""
    if not owners:
        return ""
    seen: dict[int, str] = {}
    for o in owners:
        via = getattr(o, "via", "fd")
        mark = f" [link {o.link_id}]" if via == "link" else " [perf_event]" if via == "perf_event" else ""
        if o.pid not in seen or not mark:
            seen[o.pid] = f"{o.comm}({o.pid}){mark}"
    return ", ".join(seen.values())


PROG_COLUMNS: list[Column] = [
    ("ID", "id"), ("TYPE", "type"), ("NAME", "full_name"), ("TAG", "tag"), ("LOADED", "load_time"),
    ("UID", "created_by_uid"), ("XLATED", "xlated_size"), ("JITED", "jited_size"), ("MAPS", "map_ids"),
    ("BTF", lambda p: p.btf_id or ""), ("OWNERS", lambda p: owners_text(p.owners)), ("PINS", "pins"),
]

PROG_FIELDS: list[Column] = [
    ("id", "id"), ("name", "full_name"), ("type", "type"), ("tag", "tag"), ("gpl", "gpl"),
    ("loaded at", "load_time"), ("uid", "created_by_uid"), ("xlated bytes", "xlated_size"),
    ("jited bytes", "jited_size"), ("memlock bytes", "memlock"), ("verified insns", "verified_insns"),
    ("map ids", "map_ids"), ("btf id", "btf_id"), ("attach btf", lambda p: f"obj {p.attach_btf_obj_id} "
                                                   f"type {p.attach_btf_id}" if p.attach_btf_id else ""),
    ("run time ns", "run_time_ns"), ("run count", "run_cnt"), ("recursion misses", "recursion_misses"),
    ("owners", lambda p: owners_text(p.owners)), ("pins", lambda p: "\n".join(p.pins or ())),
]


_KIND_WORDS = {"prog": "program", "map": "map", "link": "link"}


def pinned_option(kind: str):  # type: ignore[no-untyped-def]
    """``--pinned PATH``: name the object by its bpffs pin instead of its id."""
    return click.option("--pinned", type=click.Path(dir_okay=False), default=None,
                        help=f"The {_KIND_WORDS[kind]} pinned at this bpffs path (instead of an id).")


def id_from_pin(kind: str, obj_id: Optional[int], pinned: Optional[str]) -> Optional[int]:
    """The id named on the command line: ``obj_id``, or that of the object pinned at ``pinned``."""
    if pinned is None:
        return obj_id
    if obj_id is not None:
        raise click.UsageError("give an id or --pinned, not both")
    from ..inventory import pinned_object

    found = pinned_object(pinned)
    if found is None:
        fail(f"nothing pinned at {pinned} (or it is not a BPF object)")
    if found[0] != kind:
        fail(f"{pinned} pins a {_KIND_WORDS.get(found[0], found[0])}, not a {_KIND_WORDS[kind]}")
    return found[1]


def program_json(record: object) -> dict:
    """The JSON object of one program record (its fields plus ``jited``)."""
    data = to_jsonable(record)
    data["jited"] = record.jited  # type: ignore[attr-defined]
    return data


@click.group()
def prog() -> None:
    """Loaded eBPF programs: list, show one, dump its translated instructions."""


@prog.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every loaded program with its owner processes and pins."""
    from .. import inventory

    records = inventory.programs()
    emit(records, as_json=as_json, columns=PROG_COLUMNS, json_data=[program_json(r) for r in records])


@prog.command("show")
@click.argument("prog_id", type=click.IntRange(min=1), required=False)
@pinned_option("prog")
@json_option
def show(prog_id: Optional[int], pinned: Optional[str], as_json: bool) -> None:
    """One program in detail (every program when PROG_ID is left out)."""
    from .. import inventory

    prog_id = id_from_pin("prog", prog_id, pinned)
    if prog_id is None:
        records = inventory.programs()
        emit(records, as_json=as_json, columns=PROG_COLUMNS, json_data=[program_json(r) for r in records])
        return
    try:
        record = inventory.get_program(prog_id)
    except BPFNotFoundError:
        fail(f"no program with id {prog_id} (see `corebpf prog list`)")
    link_ids = [lk.id for lk in inventory.links(owners=False, pins=False) if lk.prog_id == prog_id]
    data = program_json(record)
    data["link_ids"] = link_ids
    fields = PROG_FIELDS[:-2] + [("links", lambda _: link_ids)] + PROG_FIELDS[-2:]
    emit(record, as_json=as_json, columns=fields, title=f"program {prog_id}", json_data=data)


def _dialect(text: str) -> "object":
    from ..asm import Dialect

    named = {"current": Dialect.CURRENT, "legacy": Dialect.LEGACY}
    if text.lower() in named:
        return named[text.lower()]
    if not text.lstrip("v").replace(".", "").isdigit():
        raise click.BadParameter(f"{text!r}: expected current, legacy or a bpftool version such as 7.1.0",
                                 param_hint="--dialect")
    return Dialect.for_bpftool(text)


@prog.command("dump")
@click.argument("prog_id", type=click.IntRange(min=1), required=False)
@pinned_option("prog")
@click.option("--dialect", default="current", show_default=True, metavar="current|legacy|VERSION",
              help="Print as current bpftool does, as bpftool 7.1/7.2 (legacy), or as a given bpftool "
                   "release (e.g. 7.1.0).")
@click.option("--opcodes", is_flag=True, help="Also print each instruction's bytes.")
@click.option("--linum", is_flag=True, help="Show file:line:column with the source lines (needs BTF).")
@json_option
def dump(prog_id: Optional[int], pinned: Optional[str], dialect: str, opcodes: bool, linum: bool,
         as_json: bool) -> None:
    """Disassemble the kernel's translated (xlated) instructions of a program, as
    "bpftool prog dump xlated id PROG_ID" prints them."""
    from ..asm import dump_xlated

    prog_id = id_from_pin("prog", prog_id, pinned)
    if prog_id is None:
        raise click.UsageError("give a program id or --pinned PATH")
    try:
        lines = dump_xlated(prog_id, dialect=_dialect(dialect), opcodes=opcodes, linum=linum)
    except BPFNotFoundError:
        fail(f"no program with id {prog_id} (see `corebpf prog list`)")
    if as_json:
        echo_json({"id": prog_id, "insns": lines})
        return
    for line in lines:
        click.echo(line)


__all__ = ["prog", "owners_text", "pinned_option", "id_from_pin", "program_json", "PROG_COLUMNS", "PROG_FIELDS"]
