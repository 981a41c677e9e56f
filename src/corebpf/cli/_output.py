"""Shared output helpers for CLI commands: rich tables for people, JSON for machines, clean failures.

    @click.command()
    @json_option
    def things(as_json: bool) -> None:
        emit(rows, as_json=as_json, columns=[("ID", "id"), ("NAME", "name")], title="things")

``emit`` takes records (dataclasses), mappings or lists of either. With ``as_json`` it prints
``to_jsonable(data)``; otherwise a table with ``columns`` (a list of records) or a two-column
field/value table (one record).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import sys
from datetime import datetime
from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence, Union

import click

Getter = Union[str, Callable[[Any], object]]
Column = tuple[str, Getter]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def to_jsonable(obj: object) -> Any:
    """``obj`` as JSON-ready data: dataclasses and mappings to dicts, enums to names, datetimes to ISO
    8601, bytes to hex, tuples/sets to lists."""
    if isinstance(obj, enum.Enum):  # before int: IntEnum members are ints
        return obj.name
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.repr}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    return str(obj)


def echo_json(obj: object) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    click.echo(json.dumps(to_jsonable(obj), indent=2))


def _get(row: object, getter: Getter) -> object:
    if callable(getter):
        return getter(row)
    if isinstance(row, Mapping):
        return row.get(getter)
    return getattr(row, getter, None)


def cell(value: object) -> str:
    """Human text of one table cell (None is empty, sequences are comma-joined)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(cell(v) for v in value)
    return str(value)


def console() -> "Any":
    """A rich console for stdout; as wide as the terminal, or 200 columns when piped."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((200, 24)).columns, 200)
    return Console(width=width, highlight=False, soft_wrap=False)


def table(rows: Sequence[object], columns: Sequence[Column], title: Optional[str] = None) -> None:
    """Print ``rows`` as a rich table with ``columns`` = ``[(header, attribute name or function)]``."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header, _ in columns:
        t.add_column(header, overflow="fold")
    for row in rows:
        t.add_row(*(cell(_get(row, getter)) for _, getter in columns))
    console().print(t)


def details(obj: object, fields: Optional[Sequence[Column]] = None, title: Optional[str] = None) -> None:
    """Print one record as a two-column field/value table (all dataclass fields unless ``fields``)."""
    from rich import box
    from rich.table import Table

    if fields is None:
        data = to_jsonable(obj) if not isinstance(obj, Mapping) else obj
        fields = [(k, k) for k in (data or {})]
        obj = data
    t = Table(title=title, box=box.SIMPLE, show_header=False, show_edge=False, pad_edge=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for name, getter in fields:
        t.add_row(name, cell(_get(obj, getter)))
    console().print(t)


def emit(data: object, *, as_json: bool, columns: Optional[Sequence[Column]] = None,
         title: Optional[str] = None, json_data: object = None) -> None:
    """Print ``data`` as JSON (``json_data`` if given, else ``data``) or as a table for people.

    A list is printed with ``columns``; a single record or mapping as field/value pairs
    (``columns`` then selects and names the fields).
    """
    if as_json:
        echo_json(data if json_data is None else json_data)
        return
    if isinstance(data, (list, tuple)):
        if columns is None:
            raise ValueError("columns are needed to print a list as a table")
        table(data, columns, title)
    else:
        details(data, columns, title)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command: print ``corebpf: error: message`` on stderr and exit with ``code``."""
    click.echo(f"corebpf: error: {message}", err=True)
    raise click.exceptions.Exit(code)


__all__ = ["Column", "json_option", "to_jsonable", "echo_json", "cell", "console", "table", "details", "emit",
           "fail"]
