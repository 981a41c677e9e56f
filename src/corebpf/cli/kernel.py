"""``corebpf kernel``: other kernels on local disk: fetch Debian kernel packages, extract their BTF.

    corebpf kernel fetch debian:5.10 debian:6.12     # download + unpack (cached), print where
    corebpf kernel btf debian:6.1 -o 6.1.btf         # raw BTF from the image, no boot
    corebpf kernel btf /boot/vmlinuz-6.1.0-28-amd64 -o vmlinux.btf
"""

from __future__ import annotations

from pathlib import Path

import click

from ._output import emit, fail, json_option

FETCH_COLUMNS = [
    ("SPEC", "spec"), ("RELEASE", "release"), ("PACKAGE", "package"), ("VERSION", "version"),
    ("VMLINUZ", "vmlinuz"), ("MODULES", "modules_dir"),
]


@click.group()
def kernel() -> None:
    """Other kernels: fetch Debian kernel packages, extract BTF from kernel images."""


def _note(text: str) -> None:
    click.echo(f"corebpf kernel: {text}", err=True)


@kernel.command("fetch")
@click.argument("specs", nargs=-1, required=True, metavar="SPEC...")
@json_option
def fetch(specs: tuple[str, ...], as_json: bool) -> None:
    """Download and unpack kernels (vmlinuz path, .deb, debian:5.10|6.1|6.12, linux-image-* name)."""
    from ..kernels import resolve_kernel

    images = [resolve_kernel(spec, progress=_note) for spec in specs]
    rows = [{"spec": k.spec, "release": k.release, "package": k.package, "version": k.version,
             "vmlinuz": str(k.vmlinuz), "modules_dir": str(k.modules_dir) if k.modules_dir else None}
            for k in images]
    emit(rows, as_json=as_json, columns=FETCH_COLUMNS, title="kernels")


@kernel.command("btf")
@click.argument("spec")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the raw BTF.")
@json_option
def btf(spec: str, output: str, as_json: bool) -> None:
    """Write the raw BTF of a kernel (its image's .BTF section) to OUTPUT, without booting it."""
    from ..btf import BTF
    from ..errors import BTFError
    from ..kernels import resolve_kernel

    image = resolve_kernel(spec, progress=_note)
    data = image.btf_bytes()
    try:
        types = len(BTF.from_bytes(data))
    except BTFError as e:
        fail(f"{spec}: the extracted .BTF does not parse: {e}")
    Path(output).write_bytes(data)
    emit({"spec": spec, "release": image.release, "output": output, "bytes": len(data), "types": types},
         as_json=as_json)
