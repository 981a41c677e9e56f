"""``corebpf map``: list, show and dump the eBPF maps loaded on this host (like ``bpftool map``).

JSON (``--json``): ``list``/``show`` print map objects with every field of
:class:`corebpf.inventory.MapRecord` (``owners`` and ``pins`` as for programs); ``show ID`` adds ``prog_ids``
(the programs that use the map). ``dump --json`` prints
bpftool's shape: ``[{"key": ["0x01", ...], "value": [...]}]``, or for per-CPU maps
``[{"key": [...], "values": [{"cpu": 0, "value": [...]}, ...]}]``.
"""

from __future__ import annotations

from typing import Optional

import click

from ..errors import BPFNotFoundError, BPFNotSupportedError
from ._output import Column, echo_json, emit, fail, json_option, to_jsonable
from .prog import id_from_pin, owners_text, pinned_option

MAP_COLUMNS: list[Column] = [
    ("ID", "id"), ("TYPE", "type"), ("NAME", "name"), ("KEY", "key_size"), ("VALUE", "value_size"),
    ("MAX", "max_entries"), ("FLAGS", lambda m: f"{m.flags:#x}"), ("MEMLOCK", "memlock"),
    ("BTF", lambda m: m.btf_id or ""), ("FROZEN", lambda m: "yes" if m.frozen else ""),
    ("OWNERS", lambda m: owners_text(m.owners)), ("PINS", "pins"),
]

MAP_FIELDS: list[Column] = [
    ("id", "id"), ("name", "name"), ("type", "type"), ("key size", "key_size"), ("value size", "value_size"),
    ("max entries", "max_entries"), ("flags", lambda m: f"{m.flags:#x}"), ("map extra", "map_extra"),
    ("memlock bytes", "memlock"), ("frozen", "frozen"), ("btf id", "btf_id"),
    ("btf key/value type", lambda m: f"{m.btf_key_type_id}/{m.btf_value_type_id}" if m.btf_id else ""),
    ("btf vmlinux value type", lambda m: m.btf_vmlinux_value_type_id or ""), ("ifindex", lambda m: m.ifindex or ""),
    ("owners", lambda m: owners_text(m.owners)), ("pins", lambda m: "\n".join(m.pins or ())),
]


def hex_bytes(data: bytes) -> str:
    """``01 00 ff``: bytes as bpftool prints them."""
    return " ".join(f"{b:02x}" for b in data)


def json_bytes(data: bytes) -> list[str]:
    """``["0x01", "0x00"]``: bytes as bpftool's JSON prints them."""
    return [f"0x{b:02x}" for b in data]


@click.group("map")
def map_group() -> None:
    """Loaded eBPF maps: list, show one, dump its entries."""


@map_group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every loaded map with its owner processes and pins."""
    from .. import inventory

    emit(inventory.maps(), as_json=as_json, columns=MAP_COLUMNS)


@map_group.command("show")
@click.argument("map_id", type=click.IntRange(min=1), required=False)
@pinned_option("map")
@json_option
def show(map_id: Optional[int], pinned: Optional[str], as_json: bool) -> None:
    """One map in detail (every map when MAP_ID is left out)."""
    from .. import inventory

    map_id = id_from_pin("map", map_id, pinned)
    if map_id is None:
        emit(inventory.maps(), as_json=as_json, columns=MAP_COLUMNS)
        return
    try:
        record = inventory.get_map(map_id)
    except BPFNotFoundError:
        fail(f"no map with id {map_id} (see `corebpf map list`)")
    prog_ids = [p.id for p in inventory.programs(owners=False, pins=False) if map_id in p.map_ids]
    data = to_jsonable(record)
    data["prog_ids"] = prog_ids
    fields = MAP_FIELDS[:-2] + [("used by programs", lambda _: prog_ids)] + MAP_FIELDS[-2:]
    emit(record, as_json=as_json, columns=fields, title=f"map {map_id}", json_data=data)


@map_group.command("dump")
@click.argument("map_id", type=click.IntRange(min=1), required=False)
@pinned_option("map")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after this many entries.")
@json_option
def dump(map_id: Optional[int], pinned: Optional[str], limit: Optional[int], as_json: bool) -> None:
    """Every key and value of a map as hex bytes (per-CPU maps: one value per CPU)."""
    from ..inventory.dump import dump_map

    map_id = id_from_pin("map", map_id, pinned)
    if map_id is None:
        raise click.UsageError("give a map id or --pinned PATH")
    try:
        record, entries = dump_map(map_id, limit)
    except BPFNotFoundError:
        fail(f"no map with id {map_id} (see `corebpf map list`)")
    except BPFNotSupportedError as exc:
        fail(f"cannot dump: {exc.detail}: {exc.hint}")
    if as_json:
        out = []
        for e in entries:
            item: dict[str, object] = {"key": json_bytes(e.key)}
            if e.values is not None:
                item["values"] = [{"cpu": cpu, "value": json_bytes(v)} for cpu, v in enumerate(e.values)]
            else:
                item["value"] = json_bytes(e.value or b"")
            out.append(item)
        echo_json(out)
        return
    for e in entries:
        if e.values is not None:
            click.echo(f"key:\n{hex_bytes(e.key)}")
            for cpu, v in enumerate(e.values):
                click.echo(f"value (CPU {cpu:02d}): {hex_bytes(v)}")
        else:
            click.echo(f"key: {hex_bytes(e.key)}  value: {hex_bytes(e.value or b'')}")
    click.echo(f"Found {len(entries)} element{'s' if len(entries) != 1 else ''}")


__all__ = ["map_group", "MAP_COLUMNS", "MAP_FIELDS", "hex_bytes", "json_bytes"]
