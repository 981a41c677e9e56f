"""Kernels to check objects against, from what the user names: BTF files, vmlinux images, compressed
kernel images, BTFHub-style directory trees, Debian kernel specs, or the running kernel.

    targets = find_targets(["host", "btfhub/ubuntu/20.04", "vmlinux-6.1", "debian:6.12"])

Each :class:`KernelTarget` reads its BTF on first use. Debian kernels (``debian:6.1``, a
``linux-image-*`` package name, a ``.deb``) and compressed images (bzImage/vmlinuz) go through
:func:`corebpf.kernels.resolve_kernel` (fetched with apt and cached; BTF extracted from the image).
The kernel version comes from, in order: an explicit override, the running kernel (``host``), the
spec or file name (BTFHub names files by release: ``5.4.0-1012-aws.btf.tar.xz``), the ``Linux version``
banner of a vmlinux image, the release of a resolved Debian image.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from ..errors import CoreBPFError
from .kernel_versions import KernelVersion, parse_version

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF

__all__ = ["KernelTarget", "TargetError", "find_targets", "HOST"]

HOST = "host"
_BTF_SUFFIXES = (".btf.tar.xz", ".btf.xz", ".btf", ".tar.xz", ".deb")
_BANNER = re.compile(rb"Linux version (\d+\.\d+[\w.+~-]*)")


class TargetError(CoreBPFError):
    """A kernel target that cannot be used (missing path, unknown spec, no BTF inside)."""


@dataclass
class KernelTarget:
    """One kernel: a display ``name``, where its BTF comes from (``source``), its ``version`` if known
    and ``host`` when it is the running kernel (live feature probes apply)."""

    name: str
    source: str
    version: Optional[KernelVersion] = None
    host: bool = False
    _btf: Optional["BTF"] = field(default=None, repr=False)

    def btf(self) -> "BTF":
        """The kernel's BTF (read on first call; raises :class:`BTFError` for unreadable input)."""
        if self._btf is None:
            self._btf = _load(self)
        return self._btf

    @property
    def release(self) -> str:
        """The version as text ('?' when unknown)."""
        return str(self.version) if self.version is not None else "?"


def _is_bzimage(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(0x210)
    except OSError:
        return False
    return len(head) >= 0x206 and head[0x202:0x206] == b"HdrS"


def _is_kernel_spec(spec: str) -> bool:
    """A kernel :func:`corebpf.kernels.resolve_kernel` fetches: a Debian series or package, a .deb."""
    return spec.startswith(("debian:", "linux-image-")) or spec.endswith(".deb")


def _load(t: KernelTarget) -> "BTF":
    from ..btf import BTF

    if t.host:
        return BTF.vmlinux()
    path = Path(t.source)
    if _is_kernel_spec(t.source) or _is_bzimage(path):
        from ..kernels import resolve_kernel

        image = resolve_kernel(t.source)  # KernelError (a CoreBPFError) says what went wrong
        version = parse_version(image.release)
        if version is not None and t.version is None:
            t.version = version
        return BTF.from_file(image.btf_path())
    return BTF.from_file(path)


def _banner_version(path: Path) -> Optional[KernelVersion]:
    """The ``Linux version x.y`` banner of an (uncompressed) vmlinux ELF image."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return None
            f.seek(0)
            data = f.read()
    except OSError:
        return None
    m = _BANNER.search(data)
    return parse_version(m.group(1).decode()) if m else None


def _strip_suffix(name: str) -> str:
    for suf in _BTF_SUFFIXES:
        if name.endswith(suf):
            return name[:-len(suf)]
    return name


def _walk(root: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(_BTF_SUFFIXES) or f.startswith("vmlinux") or f.startswith("vmlinuz"):
                found.append(Path(dirpath) / f)
    return sorted(found)


def _from_path(path: Path, name: Optional[str] = None) -> KernelTarget:
    version = parse_version(path.name)
    if version is None:
        version = _banner_version(path)
    return KernelTarget(name or _strip_suffix(path.name), str(path), version)


def find_targets(specs: Sequence[str], versions: Optional[dict[str, str]] = None) -> list[KernelTarget]:
    """Targets for ``specs`` in order (a directory gives every BTF file under it, BTFHub style).

    ``versions`` overrides kernel versions by target name (``{"*": "5.10"}`` for all). Raises
    :class:`TargetError` for a path that does not exist or a directory without BTF files.
    """
    out: list[KernelTarget] = []
    for spec in specs:
        if spec == HOST:
            out.append(KernelTarget(HOST, "/sys/kernel/btf/vmlinux", parse_version(os.uname().release), host=True))
        elif _is_kernel_spec(spec) and not Path(spec).exists():
            out.append(KernelTarget(spec, spec, parse_version(spec.split(":", 1)[-1])))
        else:
            p = Path(spec)
            if p.is_dir():
                files = _walk(p)
                if not files:
                    raise TargetError(f"{spec}: no BTF files (*.btf, *.btf.tar.xz, vmlinux*) under this directory")
                for f in files:
                    out.append(_from_path(f, _strip_suffix(str(f.relative_to(p)))))
            elif p.exists():
                out.append(_from_path(p))
            else:
                raise TargetError(f"{spec}: no such file or directory (give a BTF file, a vmlinux image, a BTFHub "
                                  f"directory, 'host' or debian:VERSION)")
    for t in out:
        v = (versions or {}).get(t.name) or (versions or {}).get("*")
        if v:
            parsed = parse_version(v)
            if parsed is None:
                raise TargetError(f"--kernel-version {v!r}: not a kernel version (N.M)")
            t.version = parsed
    return out

