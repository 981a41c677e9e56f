"""``corebpf btf minimize OBJ... --btf PATH... --out DIR``: per-kernel minimal BTF for shipping.

    corebpf btf minimize app.bpf.o --btf host --out ./btf           # ./btf/host.btf
    corebpf btf minimize a.bpf.o b.bpf.o --btf ./btfhub-archive --out ./min
        # one raw BTF per kernel, same relative paths as in the archive (ubuntu/20.04/x86_64/5.4.0-...btf)

Each output keeps only the types and members the objects' CO-RE relocations touch (the rules of
``bpftool gen min_core_btf``), is checked to relocate every object exactly as the full BTF does
(``--no-verify`` skips that), and loads with ``corebpf.load(obj, btf=path)`` on a kernel without BTF.

Exit codes: 0 written; 1 a relocation differs, a BTF or object is broken; 2 usage.
``--json``: ``[{"kernel", "source", "output", "full_size", "size", "types", "relocations", "differences"}]``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ._output import echo_json, fail, json_option, table

__all__ = ["minimize_cmd"]


@click.command("minimize", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("objects", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--btf", "btf_specs", multiple=True, required=True, metavar="PATH",
              help="Kernel BTF: a file, vmlinux image, BTFHub directory or 'host' (repeatable).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--no-verify", is_flag=True, help="Do not check that relocations are identical.")
@json_option
def minimize_cmd(objects: tuple[str, ...], btf_specs: tuple[str, ...], out_dir: str, no_verify: bool,
                 as_json: bool) -> None:
    """Write minimal BTF per kernel for the CO-RE relocations of OBJECTS."""
    from ..analysis.minimize import compare_relocations, mark_object, TypeMarks, build_btf
    from ..analysis.targets import TargetError, find_targets
    from ..btf import BTF
    from ..btf.core import TargetSet
    from ..elf.objectspec import ObjectSpec
    from ..errors import CoreBPFError

    try:
        targets = find_targets(list(btf_specs))
    except TargetError as e:
        fail(str(e), 2)
    try:
        specs = [ObjectSpec.from_file(o) for o in objects]
    except CoreBPFError as e:
        fail(str(e), 1)
    rows = []
    failed = False
    for t in targets:
        try:
            full = t.btf()
            marks = TypeMarks(full)
            nrel = sum(mark_object(marks, s) for s in specs)
            data = build_btf(marks)
            diffs: list[str] = []
            if not no_verify:
                small = TargetSet.from_btf(BTF.from_bytes(data), name="minimal")
                big = TargetSet.from_btf(full, name=t.name)
                for s in specs:
                    diffs += [f"{s.name}: {d}" for d in compare_relocations(s, big, small)]
        except CoreBPFError as e:
            fail(f"{t.name}: {e}", 1)
        dest = Path(out_dir) / f"{t.name}.btf"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        except OSError as e:
            fail(f"cannot write {dest}: {e.strerror or e}", 1)
        failed |= bool(diffs)
        rows.append({"kernel": t.name, "source": t.source, "output": str(dest), "full_size": len(full.raw),
                     "size": len(data), "types": len(marks.types), "relocations": nrel, "differences": diffs})
    if as_json:
        echo_json(rows)
    else:
        table(rows, [("KERNEL", "kernel"), ("OUTPUT", "output"), ("FULL", "full_size"), ("MINIMAL", "size"),
                     ("RATIO", lambda r: f"{r['size'] / r['full_size']:.4%}" if r["full_size"] else "-"),
                     ("TYPES", "types"), ("RELOCATIONS", "relocations"),
                     ("CHECK", lambda r: "skipped" if no_verify else ("identical" if not r["differences"]
                                                                    else "; ".join(r["differences"])))],
              title="minimal BTF")
    raise click.exceptions.Exit(1 if failed else 0)
