"""``corebpf prog``: list, show and disassemble the eBPF programs loaded on this host (like ``bpftool prog``)."""

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
@json_option
def show(prog_id: Optional[int], as_json: bool) -> None:
    """One program in detail (every program when PROG_ID is left out)."""
    from .. import inventory

    if prog_id is None:
        records = inventory.programs()
        emit(records, as_json=as_json, columns=PROG_COLUMNS, json_data=[program_json(r) for r in records])
        return
    try:
        record = inventory.get_program(prog_id)
    except BPFNotFoundError:
        fail(f"no program with id {prog_id} (see `corebpf prog list`)")
    emit(record, as_json=as_json, columns=PROG_FIELDS, title=f"program {prog_id}", json_data=program_json(record))


@prog.command("dump")
@click.argument("prog_id", type=click.IntRange(min=1))
@click.option("--dialect", type=click.Choice(["current", "legacy"]), default="current", show_default=True,
              help="Instruction text of current bpftool, or of bpftool before 7.3 (e.g. Debian's 7.1).")
@click.option("--opcodes", is_flag=True, help="Also print each instruction's bytes.")
@click.option("--linum", is_flag=True, help="Show file:line:column with the source lines (needs BTF).")
@json_option
def dump(prog_id: int, dialect: str, opcodes: bool, linum: bool, as_json: bool) -> None:
    """Disassemble the kernel's translated (xlated) instructions of a program, as
    ``bpftool prog dump xlated id PROG_ID`` prints them."""
    from ..asm import Dialect, dump_xlated

    try:
        lines = dump_xlated(prog_id, dialect=Dialect(dialect), opcodes=opcodes, linum=linum)
    except BPFNotFoundError:
        fail(f"no program with id {prog_id} (see `corebpf prog list`)")
    if as_json:
        echo_json({"id": prog_id, "insns": lines})
        return
    for line in lines:
        click.echo(line)


__all__ = ["prog", "owners_text", "program_json", "PROG_COLUMNS", "PROG_FIELDS"]
