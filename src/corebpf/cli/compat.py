"""``corebpf compat OBJ --btf PATH [--btf PATH ...]``: will OBJ load on these kernels? Without loading.

    corebpf compat app.bpf.o --btf host                         # the running kernel (+ live probes)
    corebpf compat app.bpf.o --btf vmlinux-5.10 --btf 6.1.btf   # vmlinux images, raw BTF files
    corebpf compat app.bpf.o --btf ./btfhub-archive/ubuntu      # every .btf.tar.xz under a tree
    corebpf compat app.bpf.o --btf ./5.4.btf --kernel-version 5.4.0
    corebpf compat app.bpf.o --btf debian:6.1                   # needs corebpf.kernels (BTF extraction)

Prints a matrix kernel x program: ``ok``, or what fails (``missing byte_off struct task_struct.state``,
``helper bpf_loop needs >= 5.17``, ``kfunc bpf_rcu_read_lock missing``...). With ``--btf host`` the
running kernel's live feature probes apply too (``--no-probe`` turns them off), so attach kinds this
host refuses (fentry/LSM under lockdown) show as ``needs trampolines: refused here``.

``--vm SPEC`` goes further: it boots that kernel in QEMU (``corebpf.kernels``, as ``corebpf vmtest``
does) and really loads each program there; its row (``debian:6.1 (vm)``) shows the loader's errors, and
the BTF-only verdicts for the same kernel are added next to it when ``--btf`` did not name it.

Exit codes: 0 every program is ok on every kernel; 1 some program is not (or a kernel's BTF could not
be read, or the object is broken); 2 usage (missing file, bad option).

JSON (``--json``)::

    {"object", "ok", "min_kernel", "programs": [names],
     "kernels": [{"name", "source", "version", "error", "ok",
                  "programs": {name: {"program", "kernel", "ok", "problems": [...], "notes": [...]}}}]}
"""

from __future__ import annotations

from typing import Any, Optional

import click

from ._output import console, echo_json, fail, json_option

__all__ = ["compat"]


def _versions(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        name, sep, ver = v.rpartition("=")
        out[name if sep else "*"] = ver
    return out


def _print(report: Any) -> None:
    from rich import box
    from rich.table import Table

    t = Table(title=f"{report.object} (needs >= {report.min_kernel or '?'} upstream)", box=box.SIMPLE_HEAD,
              show_edge=False, pad_edge=False)
    t.add_column("KERNEL", overflow="fold")
    t.add_column("VERSION")
    for p in report.programs:
        t.add_column(p, overflow="fold")
    notes: list[str] = []
    for k in report.kernels:
        if k.error:
            t.add_row(k.name, k.version or "?", *([f"[red]error: {k.error}[/red]"] + [""] * (len(report.programs) - 1)))
            continue
        cells = []
        for p in report.programs:
            v = k.verdicts[p]
            cells.append("[green]ok[/green]" if v.ok else f"[red]{v.text}[/red]")
            notes += [f"{k.name} / {p}: {n}" for n in v.notes]
        t.add_row(k.name, k.version or "?", *cells)
    con = console()
    con.print(t)
    for n in notes:
        con.print(f"  note: {n}", highlight=False)


@click.command("compat", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("obj", type=click.Path(exists=True, dir_okay=False))
@click.option("--btf", "btf_specs", multiple=True, metavar="PATH",
              help="A kernel: BTF file, vmlinux image, BTFHub directory, 'host' or debian:VERSION (repeatable).")
@click.option("--kernel-version", "kernel_versions", multiple=True, metavar="[NAME=]VERSION",
              help="Kernel version of a target (NAME=5.10) or of all (5.10), when its name does not say.")
@click.option("--no-probe", is_flag=True, help="With --btf host: do not use the live feature probes.")
@click.option("--vm", "vm_specs", multiple=True, metavar="SPEC",
              help="Also load for real in this kernel booted in QEMU (debian:6.1, a package, a vmlinuz).")
@click.option("--vm-timeout", default=900.0, show_default=True, metavar="SECONDS", help="Per VM run.")
@json_option
def compat(obj: str, btf_specs: tuple[str, ...], kernel_versions: tuple[str, ...], no_probe: bool,
           vm_specs: tuple[str, ...], vm_timeout: float, as_json: bool) -> None:
    """Check OBJ's CO-RE relocations, externs, program/map/attach types and helpers against kernels."""
    from ..analysis.compat import check_compat
    from ..analysis.targets import TargetError, find_targets
    from ..elf.objectspec import ObjectSpec
    from ..errors import CoreBPFError

    if not btf_specs and not vm_specs:
        fail("give at least one kernel: --btf PATH (a BTF file, vmlinux image, BTFHub directory, debian:6.1) "
             "or --btf host, or --vm SPEC", 2)
    static = list(btf_specs) + [v for v in vm_specs if v not in btf_specs]
    try:
        targets = find_targets(static, _versions(kernel_versions))
    except TargetError as e:
        fail(str(e), 2)
    try:
        spec = ObjectSpec.from_file(obj)
        report = check_compat(spec, targets, probe=not no_probe)
        if vm_specs:
            from ..analysis.compat_vm import check_in_vm

            for v in vm_specs:
                report.kernels.append(check_in_vm(obj, v, timeout=vm_timeout))
    except CoreBPFError as e:
        fail(str(e), 1)
    if as_json:
        echo_json(report.as_dict())
    else:
        _print(report)
    raise click.exceptions.Exit(0 if report.ok else 1)
