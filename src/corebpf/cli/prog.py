"""``corebpf prog``: list, show and disassemble the eBPF programs loaded on this host (like ``bpftool prog``)."""

from __future__ import annotations

from typing import Optional, Sequence

import click

from ..errors import BPFNotFoundError
from ._output import Column, cell, echo_json, emit, fail, json_option, to_jsonable


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
    ("ID", "id"), ("TYPE", "type"), ("NAME", "name"), ("TAG", "tag"), ("LOADED", "load_time"),
    ("UID", "created_by_uid"), ("XLATED", "xlated_size"), ("JITED", "jited_size"), ("MAPS", "map_ids"),
    ("BTF", lambda p: p.btf_id or ""), ("OWNERS", lambda p: owners_text(p.owners)), ("PINS", "pins"),
]

PROG_FIELDS: list[Column] = [
    ("id", "id"), ("name", "name"), ("type", "type"), ("tag", "tag"), ("gpl", "gpl"),
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
@json_option
def dump(prog_id: int, as_json: bool) -> None:
    """Disassemble the kernel's translated (xlated) instructions of a program, like
    ``bpftool prog dump xlated id PROG_ID``."""
    lines = _disassemble(prog_id)
    if as_json:
        echo_json({"id": prog_id, "insns": lines})
        return
    for line in lines:
        click.echo(line)


def _disassemble(prog_id: int) -> list[str]:
    try:
        from ..asm import disassemble, xlated
    except ImportError:
        fail("this corebpf has no disassembler yet (corebpf.asm.disassemble / corebpf.asm.xlated are missing)")
    try:
        text = xlated.disassemble_program(prog_id) if hasattr(xlated, "disassemble_program") else None
        if text is None:
            text = disassemble(xlated.read(prog_id))
    except BPFNotFoundError:
        fail(f"no program with id {prog_id} (see `corebpf prog list`)")
    return text.splitlines() if isinstance(text, str) else [cell(t) for t in text]


__all__ = ["prog", "owners_text", "program_json", "PROG_COLUMNS", "PROG_FIELDS"]
