"""Kernel BTF availability: ``/sys/kernel/btf/vmlinux`` and the module BTFs next to it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


@dataclass(frozen=True)
class BTFInfo:
    """Whether the kernel exposes BTF (needed by CO-RE, tp_btf, fentry/fexit, LSM, struct_ops)."""

    vmlinux_path: str
    vmlinux_present: bool
    vmlinux_size: Optional[int]
    modules: tuple[str, ...]
    source: str = "/sys/kernel/btf"
    error: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"vmlinux_path": self.vmlinux_path, "vmlinux_present": self.vmlinux_present,
                "vmlinux_size": self.vmlinux_size, "modules": list(self.modules), "source": self.source,
                "error": self.error}


def btf_info(directory: str = "/sys/kernel/btf") -> BTFInfo:
    """Scan ``directory`` for vmlinux and module BTF (never raises)."""
    vmlinux = os.path.join(directory, "vmlinux")
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        hint = " (kernel built without CONFIG_DEBUG_INFO_BTF: CO-RE needs an external BTF file, e.g. from BTFHub)"
        return BTFInfo(vmlinux, False, None, (), directory, f"{directory}: {exc.strerror}{hint}")
    size = None
    err = None
    if "vmlinux" in names:
        try:
            size = os.stat(vmlinux).st_size
        except OSError as exc:
            err = f"{vmlinux}: {exc.strerror}"
    else:
        err = f"{vmlinux} missing (CONFIG_DEBUG_INFO_BTF is off)"
    return BTFInfo(vmlinux, "vmlinux" in names, size, tuple(n for n in names if n != "vmlinux"), directory, err)
