"""``corebpf link``: the BPF links on this host: which program runs where (like ``bpftool link``).

JSON (``--json``): link objects ``{id, type, type_id, prog_id, attach, owners, pins}`` where ``attach`` holds
the decoded fields of the link type (see ``corebpf.inventory.attach``, e.g. ``{"tp_name": "sys_enter",
"cookie": 0}``) plus ``target``, the attach point in one line.
"""

from __future__ import annotations

from typing import Optional

import click

from ..errors import BPFNotFoundError
from ._output import Column, emit, fail, json_option, to_jsonable
from .prog import id_from_pin, owners_text, pinned_option

LINK_COLUMNS: list[Column] = [
    ("ID", "id"), ("TYPE", "type"), ("PROG", "prog_id"), ("ATTACH", lambda lk: lk.attach.target),
    ("OWNERS", lambda lk: owners_text(lk.owners)), ("PINS", "pins"),
]


def link_json(record: object) -> dict:
    """The JSON object of one link: its fields, ``attach`` with its decoded fields plus ``target``."""
    data = to_jsonable(record)
    data["attach"]["target"] = record.attach.target  # type: ignore[attr-defined]
    return data


@click.group()
def link() -> None:
    """BPF links: which program is attached where."""


@link.command("list")
@json_option
def list_(as_json: bool) -> None:
    """Every BPF link with its program, attach point, owners and pins."""
    from .. import inventory

    records = inventory.links()
    emit(records, as_json=as_json, columns=LINK_COLUMNS, json_data=[link_json(r) for r in records])


@link.command("show")
@click.argument("link_id", type=click.IntRange(min=1), required=False)
@pinned_option("link")
@json_option
def show(link_id: Optional[int], pinned: Optional[str], as_json: bool) -> None:
    """One link in detail (every link when LINK_ID is left out)."""
    from .. import inventory

    link_id = id_from_pin("link", link_id, pinned)
    if link_id is None:
        records = inventory.links()
        emit(records, as_json=as_json, columns=LINK_COLUMNS, json_data=[link_json(r) for r in records])
        return
    try:
        record = inventory.get_link(link_id)
    except BPFNotFoundError:
        fail(f"no link with id {link_id} (see `corebpf link list`)")
    fields: list[Column] = [("id", "id"), ("type", "type"), ("prog id", "prog_id"),
                            ("attach", lambda lk: lk.attach.target)]
    fields += [(name, (lambda lk, n=name: getattr(lk.attach, n)))
               for name in to_jsonable(record.attach)]
    fields += [("owners", lambda lk: owners_text(lk.owners)), ("pins", lambda lk: "\n".join(lk.pins or ()))]
    emit(record, as_json=as_json, columns=fields, title=f"link {link_id}", json_data=link_json(record))


__all__ = ["link", "link_json", "LINK_COLUMNS"]
