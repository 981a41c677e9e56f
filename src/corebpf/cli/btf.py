"""``corebpf btf``: dump BTF as C (``vmlinux.h``) or JSON, and show one type's layout like pahole.

    corebpf btf dump > vmlinux.h                     # the running kernel, like bpftool ... format c
    corebpf btf dump task_struct sk_buff            # only these types and what they need
    corebpf btf dump --module nf_conntrack          # a module's split BTF (on top of vmlinux)
    corebpf btf dump ./prog.bpf.o --format json     # bpftool -j shaped JSON ({"types": [...]})
    corebpf btf show task_struct [--btf FILE] [--json]

Exit codes: 0 done; 1 a type was not found or the BTF is broken; 2 usage errors (bad option,
a FILE or module that does not exist).

``dump --format c|json`` of raw BTF runs on the standard library only: it loads the dumper
modules without running ``corebpf.btf``'s package ``__init__`` (which imports numpy), so dumping
all of vmlinux needs about half the memory. ELF files and archives go through the full reader.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Iterable, Iterator, NoReturn, Optional

import click

from ..errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    import mmap

    from ..btf.c_dump_table import RawTypes

# The `dump` path imports as little as it can: interpreter start-up and imports are a third of a
# cold `corebpf btf dump` (difflib, json, rich and friends load only where they are used).
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command with ``corebpf: error: message`` and exit code ``code`` (see ``_output.fail``)."""
    from ._output import fail as _fail
    _fail(message, code)

VMLINUX = "/sys/kernel/btf/vmlinux"
SYSFS_BTF = "/sys/kernel/btf"
# -- where the BTF comes from ------------------------------------------------------------------------
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            if os.path.dirname(os.path.abspath(path)) == SYSFS_BTF:
                mapped = _map(f)
                if mapped is not None:
                    return mapped  # type: ignore[return-value]
            return f.read()
    except FileNotFoundError:
        fail(f"{path}: no such file", 2)
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a BTF file", 2)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror or e}", 1)


def _map(f: IO[bytes]) -> "Optional[mmap.mmap]":
    """The kernel's BTF mapped read-only (Linux 6.16+ allows it), or None where it cannot be.

    The pages are the kernel's own (not counted in our RSS) and nothing is copied: a full dump's
    peak RSS drops by the BTF's size (5 MB for vmlinux). Only for /sys/kernel/btf, which never
    changes under the mapping (a regular file could shrink, and reading it would then crash).
    """
    import mmap
    try:
        return mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None


def _is_raw_btf(data: bytes) -> bool:
    return data[:2] in (b"\x9f\xeb", b"\xeb\x9f")


def _default_base(path: str) -> Optional[str]:
    """Module BTF under /sys/kernel/btf is split BTF on top of vmlinux."""
    p = os.path.abspath(path)
    if os.path.dirname(p) == SYSFS_BTF and os.path.basename(p) != "vmlinux":
        return VMLINUX
    return None


def _resolve_source(file: Optional[str], module: Optional[str], base: Optional[str]) -> tuple[str, Optional[str]]:
    """(BTF file, base BTF file or None) for the command line's FILE / --module / --base."""
    if file and module:
        fail("give a FILE or --module, not both", 2)
    if module:
        if "/" in module or module.startswith("."):
            fail(f"invalid module name {module!r}", 2)
        path = os.path.join(SYSFS_BTF, module)
        if module == "vmlinux":
            return VMLINUX, None
        if not os.path.exists(path):
            have = sorted(n for n in _listdir(SYSFS_BTF) if n != "vmlinux")
            import difflib
            hint = (f"; modules with BTF: {', '.join(difflib.get_close_matches(module, have, 5) or have[:10])}"
                    if have else "; no module BTF is present (none loaded, or no CONFIG_DEBUG_INFO_BTF_MODULES)")
            fail(f"no BTF for module {module!r}: {path} does not exist{hint}", 2)
        return path, base or VMLINUX
    if file is None:
        if not os.path.exists(VMLINUX):
            fail(f"{VMLINUX} does not exist (kernel without CONFIG_DEBUG_INFO_BTF?): pass a BTF FILE", 1)
        return VMLINUX, None
    if not os.path.exists(file):
        fail(f"{file}: no such file", 2)
    return file, base or _default_base(file)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def load_raw_types(path: str, base: Optional[str]) -> "RawTypes":
    """A :class:`corebpf.btf.c_dump_table.RawTypes` for ``path`` (split on ``base`` if given).

    Raw BTF is read directly (standard library only); ELF objects/images and BTFHub archives are
    opened with the full reader first.
    """
    from ..btf import c_dump_table as table
    base_rt = load_raw_types(base, None) if base else None
    data = _read(path)
    if _is_raw_btf(data):
        return table.RawTypes(data, base_rt, what=path)
    from ..btf import BTF  # ELF or archive: the reader knows how to unpack them
    from ..btf.c_dump import raw_types

    base_btf = BTF.from_file(base) if base else None
    return raw_types(BTF.from_file(path, base_btf))


def _looks_like_file(arg: str) -> bool:
    return "/" in arg or arg.endswith((".o", ".btf", ".xz", ".tar")) or os.path.isfile(arg)


def _close_matches(rt: object, names: Iterable[str]) -> str:
    """``; did you mean: a, b`` from the names of structs, unions, enums and typedefs."""
    import difflib

    from ..btf import c_dump_table as table
    candidates: set[str] = set()
    kinds = rt.kinds  # type: ignore[attr-defined]
    for kind in (table.STRUCT, table.UNION, table.ENUM, table.ENUM64, table.TYPEDEF, table.FWD):
        for tid in rt.ids_of_kind(kind):  # type: ignore[attr-defined]
            n = rt.name(tid)  # type: ignore[attr-defined]
            if n:
                candidates.add(n)
    del kinds
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, sorted(candidates), n=5, cutoff=0.6)
        if close:
            parts.append(f"{name!r}: did you mean {', '.join(close)}?")
        else:
            parts.append(f"{name!r}: no similar name")
    return "; ".join(parts)


def _write(chunks: Iterator[str], output: Optional[str]) -> None:
    f: IO[str]
    if output and output != "-":
        try:
            f = open(output, "w", encoding="utf-8")
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror or e}", 1)
        with f:
            for chunk in chunks:
                f.write(chunk)
        return
    out = sys.stdout
    for chunk in chunks:
        out.write(chunk)
    out.flush()


# -- commands -----------------------------------------------------------------------------------------
class _BTFGroup(click.Group):
    """``btf``'s subcommands; ``minimize`` (and what it imports) loads only when it runs."""

    _LAZY = {"minimize": ("btf_minimize", "minimize_cmd")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._LAZY))

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        lazy = self._LAZY.get(name)
        if lazy is not None and name not in self.commands:
            import importlib
            module = importlib.import_module(f"{__package__}.{lazy[0]}")
            self.add_command(getattr(module, lazy[1]), name)
        return self.commands.get(name)


@click.group(cls=_BTFGroup)
def btf() -> None:
    """BTF type information: dump as C (vmlinux.h) or JSON, show a type's layout."""


@btf.command("dump", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("args", nargs=-1, metavar="[FILE] [TYPE]...")
@click.option("--module", "-m", "module", metavar="NAME", help="A kernel module's BTF (/sys/kernel/btf/NAME).")
@click.option("--base", "-B", "base", metavar="FILE", help="Base BTF for a split BTF FILE (default: vmlinux "
              "for files under /sys/kernel/btf).")
@click.option("--format", "-f", "fmt", type=click.Choice(["c", "json"]), default="c", show_default=True,
              help="C header (like bpftool ... format c) or JSON (like bpftool -j).")
@click.option("--output", "-o", metavar="PATH", help="Write here instead of stdout.")
@click.option("--no-header", is_flag=True, help="C: leave out the #ifndef guard and the pragma.")
@click.option("--no-cache", is_flag=True, help="C: do not use or fill the on-disk cache of full dumps.")
@click.option("--pretty", is_flag=True, help="JSON: indent.")
def dump(args: tuple[str, ...], module: Optional[str], base: Optional[str], fmt: str, output: Optional[str],
         no_header: bool, no_cache: bool, pretty: bool) -> None:
    """Dump BTF as C or JSON. FILE (raw BTF, an ELF object or vmlinux image, a BTFHub archive)
    defaults to the running kernel's BTF; the first argument is taken as FILE when it contains a
    '/' or names an existing file. TYPEs limit the dump to those types (every struct, union, enum
    or typedef of that name, or a numeric id) and the types they depend on.

    JSON is {"types": [...]} with bpftool's keys: id, kind, name ("(anon)" when anonymous) and per
    kind size, type_id, members (name, type_id, bits_offset, bitfield_size), values (name, val),
    params, vars... A split BTF (module) lists its own types only, like bpftool.
    """
    file = None
    types = list(args)
    if types and _looks_like_file(types[0]):
        file = types.pop(0)
    path, base_path = _resolve_source(file, module, base)
    try:
        if fmt == "c" and not types and not no_cache:
            # a full dump seen before: stream it from the cache without parsing the BTF at all
            from ..btf import c_dump_cache as cache
            key = cache.file_key([p for p in (base_path, path) if p], f"header={int(not no_header)}")
            hit = cache.load(key) if key else None
            if hit is not None:
                _write(hit, output)
                return
        rt = load_raw_types(path, base_path)
        ids = _type_ids(rt, types) if types else None
        if fmt == "json":
            from ..btf import c_dump_json as js
            if ids is not None:
                ids = js.dependencies(rt, ids)
            _write(js.iter_json(rt, ids, indent=2 if pretty else None), output)
            return
        from ..btf import c_dump as cd
        chunks = cd.iter_c(rt, ids, header=not no_header, cache=not no_cache and ids is None)
        _write(chunks, output)
    except BTFError as e:
        fail(str(e), 1)


def _type_ids(rt: object, names: list[str]) -> list[int]:
    """Ids for TYPE arguments (names or numbers); unknown names end the command with close matches."""
    from ..btf import c_dump_table as table
    skip = (table.FUNC, table.VAR, table.DATASEC, table.DECL_TAG)
    wanted = [n for n in names if not n.isdigit()]
    found = rt.ids_named(*wanted) if wanted else {}  # type: ignore[attr-defined]
    ids: list[int] = []
    missing: list[str] = []
    for n in names:
        if n.isdigit():
            tid = int(n)
            if not 0 < tid <= rt.last_id:  # type: ignore[attr-defined]
                fail(f"type id {tid} out of range (last id is {rt.last_id})", 1)  # type: ignore[attr-defined]
            ids.append(tid)
            continue
        hits = [t for t in found.get(n, []) if rt.kinds[t] not in skip]  # type: ignore[attr-defined]
        if not hits:
            missing.append(n)
        ids.extend(hits)
    if missing:
        fail(f"no such type: {_close_matches(rt, missing)}", 1)
    return sorted(set(ids))


@btf.command("show", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("type_name", metavar="TYPE")
@click.option("--btf", "btf_file", metavar="FILE", help="BTF to read (default: the running kernel's).")
@click.option("--module", "-m", "module", metavar="NAME", help="Look in a kernel module's BTF.")
@click.option("--base", "-B", "base", metavar="FILE", help="Base BTF when --btf is split BTF.")
@json_option
def show(type_name: str, btf_file: Optional[str], module: Optional[str], base: Optional[str],
         as_json: bool) -> None:
    """Layout of a struct or union like pahole: each member's offset and size, bitfields,
    holes, padding, total size and cachelines. Enums list their values; other types print as C."""
    from ..btf import BTF, Kind, c_dump
    from ._output import echo_json
    from ..btf.c_dump_layout import format_layout, layout
    from ..btf.types import Composite, Enum

    path, base_path = _resolve_source(btf_file, module, base)
    try:
        base_btf = BTF.from_file(base_path) if base_path else None
        b = BTF.from_file(path, base_btf) if path != VMLINUX else BTF.vmlinux()
        t = _find_type(b, type_name)
        if t is None:
            rt = c_dump.raw_types(b)
            fail(f"no struct, union, enum or typedef named {type_name!r} in {path}: "
                 f"{_close_matches(rt, [type_name]).split(': ', 1)[1]}", 1)
        target = t.resolve()
        if isinstance(target, Composite):
            lay = layout(t)
            if as_json:
                echo_json(lay.to_dict())
            else:
                if t.kind == Kind.TYPEDEF:
                    click.echo(f"typedef {target.format_c()} {t.name};")
                click.echo(format_layout(lay), nl=False)
            return
        if as_json:
            data = {"id": t.id, "kind": t.kind.name, "name": t.name, "c": t.format_c()}
            try:
                data["size"] = t.size
            except BTFError:
                pass
            if isinstance(target, Enum):
                data["values"] = [{"name": v.name, "val": v.value} for v in target.values]
            echo_json(data)
            return
        if isinstance(target, Enum):
            click.echo(f"enum {target.name} {{" if target.name else "enum {")
            for v in target.values:
                click.echo(f"\t{v.name} = {v.value},")
            click.echo(f"}};\t/* size: {target.size} */")
            return
        try:
            size = f"\t/* size: {t.size} */"
        except BTFError:
            size = ""
        decl = f"typedef {t.type.format_c(t.name)}" if t.kind == Kind.TYPEDEF else t.format_c()  # type: ignore[attr-defined]
        click.echo(f"{decl};{size}")
    except BTFError as e:
        hint = "" if base_path else " (split BTF, e.g. a module's? pass its base with --base)"
        fail(f"{e}{hint if 'first string' in str(e) else ''}", 1)


def _find_type(b: object, name: str) -> Optional[object]:
    """The struct/union named ``name`` if there is one, else an enum, typedef or other type."""
    from ..btf import Kind

    if name.isdigit():
        try:
            return b[int(name)]  # type: ignore[index]
        except BTFError:
            return None
    for kind in (Kind.STRUCT, Kind.UNION, Kind.TYPEDEF, Kind.ENUM, Kind.ENUM64, Kind.INT, Kind.FLOAT, Kind.FWD):
        try:
            return b.find(name, kind)  # type: ignore[attr-defined]
        except KeyError:
            continue
    return None
