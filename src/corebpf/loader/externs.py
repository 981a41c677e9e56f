"""Resolve ``__kconfig`` and ``__ksym`` externs against the running kernel, as libbpf does.

* kconfig: values from the kernel config (``/proc/config.gz`` or ``/boot/config-*``, via
  :mod:`corebpf.node.kconfig`) plus libbpf's synthetic ``LINUX_KERNEL_VERSION``,
  ``LINUX_HAS_BPF_COOKIE`` and ``LINUX_HAS_SYSCALL_WRAPPER``; encoded into the ``.kconfig`` map by
  the extern's BTF type (bool, char, ``enum libbpf_tristate``, integers, char arrays).
* typed ksyms (variables and kfuncs): BTF ids in vmlinux, then in module BTF (kfuncs in modules also
  need the module BTF's fd in the program's ``fd_array``, at the index the call's ``off`` names).
* typeless ksyms (``extern const void x __ksym``): addresses from ``/proc/kallsyms``.

Unresolved ``__weak`` externs stay zero (kfunc calls to them are poisoned); any other unresolved extern
is an error naming it.
"""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from ..btf.types import Enum, Int, Kind
from ..errors import CoreBPFError
from ..elf.specs import ExternKind, ExternSpec

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..elf.objectspec import ObjectSpec

__all__ = ["ExternError", "KsymResolution", "ResolvedExterns", "resolve_externs", "kernel_version_code"]


class ExternError(CoreBPFError):
    """An extern could not be resolved on this kernel."""


@dataclass
class KsymResolution:
    """Where a ksym resolved: a BTF id (+ module BTF fd / fd_array index) or an address."""

    btf_id: int = 0
    btf_obj_fd: int = 0
    fd_array_index: int = 0
    address: int = 0
    resolved: bool = False
    where: str = ""


@dataclass
class ResolvedExterns:
    """Results of extern resolution for one load (module BTF fds are owned here, closed by :meth:`close`)."""

    kconfig: Optional[bytearray] = None
    ksyms: dict[str, KsymResolution] = field(default_factory=dict)
    fd_array: list[int] = field(default_factory=list)
    owned: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.owned:
            fd.close()
        self.owned.clear()


def kernel_version_code(release: Optional[str] = None) -> int:
    """``KERNEL_VERSION(a, b, c)`` of ``uname -r`` (c capped at 255, as the kernel does)."""
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        return 0
    a, b, c = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    return (a << 16) + (b << 8) + min(c, 255)


def _synthetic(name: str) -> Optional[str]:
    if name == "LINUX_KERNEL_VERSION":
        return str(kernel_version_code())
    if name == "LINUX_HAS_BPF_COOKIE":
        try:
            from .. import features

            return "y" if features.helper("kprobe", "get_attach_cookie") else "n"
        except Exception:  # a probe failure means "no": the program takes its fallback path
            return "n"
    if name == "LINUX_HAS_SYSCALL_WRAPPER":
        try:
            with open("/proc/kallsyms") as f:
                for line in f:
                    if line.rstrip().endswith(("__x64_sys_bpf", "__arm64_sys_bpf", "__s390x_sys_bpf")):
                        return "y"
        except OSError:
            pass
        return "n"
    return None


def _encode_kconfig(ext: ExternSpec, t: Any, value: str) -> bytes:
    r = t.resolve()
    size = ext.size
    if r.kind == Kind.ARRAY:
        if value in ("y", "m", "n"):
            raise ExternError(f"kconfig extern {ext.name!r}: tristate value {value!r} for a char array")
        raw = value.encode()[:size - 1]
        return raw + bytes(size - len(raw))
    if isinstance(r, Enum) and r.name == "libbpf_tristate":
        tri = {"y": 1, "n": 0, "m": 2}
        if value not in tri:
            raise ExternError(f"kconfig extern {ext.name!r}: {value!r} is not a tristate (y/n/m)")
        return tri[value].to_bytes(size, "little")
    if isinstance(r, Int) and r.is_bool:
        if value not in ("y", "n"):
            raise ExternError(f"kconfig extern {ext.name!r}: value {value!r} does not fit a bool (use tristate)")
        return (1 if value == "y" else 0).to_bytes(size, "little")
    if isinstance(r, Int) and r.is_char and value in ("y", "n", "m"):
        return value.encode()
    if value in ("y", "n", "m"):
        if isinstance(r, (Int, Enum)):
            return {"y": 1, "n": 0, "m": 2}[value].to_bytes(size, "little")
        raise ExternError(f"kconfig extern {ext.name!r}: tristate value for type {t.format_c()!r}")
    try:
        num = int(value, 0)
    except ValueError:
        raise ExternError(f"kconfig extern {ext.name!r}: value {value!r} is not a number") from None
    signed = isinstance(r, Int) and r.signed or isinstance(r, Enum) and r.signed
    try:
        return num.to_bytes(size, "little", signed=signed and num < 0)
    except OverflowError:
        raise ExternError(f"kconfig extern {ext.name!r}: value {value} does not fit {size} bytes") from None


def _kallsyms() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    out.setdefault(parts[2], int(parts[0], 16))
    except OSError as exc:
        raise ExternError(f"typeless __ksym externs need /proc/kallsyms: {exc.strerror}") from None
    return out


class _ModuleBTFs:
    """Module BTFs loaded in the kernel, opened on first need (fds owned by the ResolvedExterns)."""

    def __init__(self, out: ResolvedExterns) -> None:
        self._out = out
        self._mods: Optional[list[tuple[str, "BTF", Any]]] = None
        self._fd_index: dict[str, int] = {}

    def all(self) -> list[tuple[str, "BTF", Any]]:
        if self._mods is None:
            self._mods = []
            from .._sys import _generated as g
            from .._sys import ops
            from ..btf import BTF

            names = set(BTF.module_names())
            for bid in ops.iter_ids("btf"):
                try:
                    fd = ops.get_fd_by_id("btf", bid)
                except CoreBPFError:
                    continue
                name_buf = ctypes.create_string_buffer(64)
                info = g.BtfInfo(name=ctypes.addressof(name_buf), name_len=64)
                try:
                    ops.obj_get_info_by_fd(fd.fileno(), info)
                except CoreBPFError:
                    fd.close()
                    continue
                name = name_buf.value.decode(errors="replace")
                if not info.kernel_btf or name not in names:
                    fd.close()
                    continue
                try:
                    btf = BTF.module(name)
                except CoreBPFError:
                    fd.close()  # a corrupt module BTF is skipped, not fatal
                    continue
                self._out.owned.append(fd)
                self._mods.append((name, btf, fd))
        return self._mods

    def fd_index(self, name: str, fd: Any) -> int:
        idx = self._fd_index.get(name)
        if idx is None:
            if not self._out.fd_array:
                self._out.fd_array.append(0)  # index 0 means vmlinux: never used for a module
            idx = len(self._out.fd_array)
            self._out.fd_array.append(fd.fileno())
            self._fd_index[name] = idx
        return idx


def _find_btf_id(btf: "BTF", name: str, kind: Kind) -> int:
    for t in btf.find_all(name, kind):
        if t.name == name and t.btf is btf:
            return t.id
    return -1


def resolve_externs(spec: "ObjectSpec", vmlinux: Optional["BTF"] = None, kconfig_extra: Optional[dict[str, str]] = None) -> ResolvedExterns:
    """Resolve every extern of ``spec`` (raises :class:`ExternError` for a non-weak one that fails)."""
    out = ResolvedExterns()
    if not spec.externs:
        return out
    kmap = spec.maps.get(".kconfig")
    if kmap is not None and kmap.data is not None:
        out.kconfig = bytearray(len(kmap.data))
        from ..node.kconfig import load_kconfig

        kc = None
        for ext in spec.externs.values():
            if ext.kind != ExternKind.KCONFIG:
                continue
            value = (kconfig_extra or {}).get(ext.name)
            if value is None:
                value = _synthetic(ext.name)
            if value is None and ext.name.startswith("CONFIG_"):
                if kc is None:
                    kc = load_kconfig()
                value = kc.get(ext.name)
                if value is None and kc.available and not ext.weak:
                    value = "n"  # absent from an available config means "not set" (libbpf does the same)
            if value is None:
                if ext.weak:
                    continue
                raise ExternError(f"kconfig extern {ext.name!r}: no value on this kernel (kernel config "
                                  f"unavailable?); declare it __weak to default to 0")
            var = spec.btf[ext.type_id]  # type: ignore[index]
            raw = _encode_kconfig(ext, var.type, value)
            out.kconfig[ext.offset:ext.offset + len(raw)] = raw
    ksyms = [e for e in spec.externs.values() if e.kind == ExternKind.KSYM]
    if not ksyms:
        return out
    mods = _ModuleBTFs(out)
    kallsyms: Optional[dict[str, int]] = None
    try:
        for ext in ksyms:
            res = KsymResolution()
            if not ext.typed:
                if kallsyms is None:
                    kallsyms = _kallsyms()
                addr = kallsyms.get(ext.name)
                if addr is None and not ext.weak:
                    raise ExternError(f"typeless ksym {ext.name!r} is not in /proc/kallsyms (only functions are "
                                      f"listed without CONFIG_KALLSYMS_ALL); declare it __weak if optional")
                res = KsymResolution(address=addr or 0, resolved=addr is not None, where="kallsyms")
                out.ksyms[ext.name] = res
                continue
            if vmlinux is None:
                from ..btf import BTF

                vmlinux = BTF.vmlinux()
            kind = Kind.FUNC if ext.is_func else Kind.VAR
            lookup = ext.essential_name if ext.is_func else ext.name
            bid = _find_btf_id(vmlinux, lookup, kind)
            if bid > 0:
                res = KsymResolution(btf_id=bid, resolved=True, where="vmlinux")
            else:
                for name, mbtf, fd in mods.all():
                    mid = _find_btf_id(mbtf, lookup, kind)
                    if mid > 0:
                        res = KsymResolution(btf_id=mid, btf_obj_fd=fd.fileno(), resolved=True, where=name)
                        if ext.is_func:
                            res.fd_array_index = mods.fd_index(name, fd)
                        break
            if not res.resolved and not ext.weak:
                what = "kfunc" if ext.is_func else "ksym variable"
                raise ExternError(f"{what} {ext.name!r} is not in the kernel's BTF (vmlinux or modules): this "
                                  f"kernel lacks it; declare it __weak and check bpf_ksym_exists() to make it optional")
            out.ksyms[ext.name] = res
    except BaseException:
        out.close()
        raise
    return out

