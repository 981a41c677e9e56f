"""``compat --vm``: load an object for real inside another kernel booted in QEMU.

The kernel is resolved by :func:`corebpf.kernels.resolve_kernel` (``debian:6.1``, a package, a
vmlinuz path) and booted with :func:`corebpf.kernels.vm.run_in_vm` (the host's root read-only over 9p,
so this Python and corebpf run inside); :mod:`.vmload` loads each program there and reports back.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from .compat import KernelReport, Verdict
from .kernel_versions import parse_version
from .vmload import parse_output

__all__ = ["check_in_vm", "run_loads"]


def run_loads(obj_paths: list[str], spec: str, *, timeout: float = 900.0) -> tuple[str, Optional[str], dict, str]:
    """Boot kernel ``spec`` once and load every program of each object there: ``(label, release,
    {path: {program: {"ok", "error"}}}, error)`` with ``error`` '' when the guest reported."""
    from ..kernels import resolve_kernel
    from ..kernels.vm import VMConfig, run_in_vm

    image = resolve_kernel(spec)
    cmd = [sys.executable, "-m", "corebpf.analysis.vmload", *(os.path.abspath(p) for p in obj_paths)]
    res = run_in_vm(image, cmd, config=VMConfig(timeout=timeout))
    found = parse_output(res.output)
    if found is None:
        tail = (res.output or res.console_tail or "").strip().splitlines()[-3:]
        return image.label, image.release, {}, \
            f"VM run {res.status}: {res.reason or ' / '.join(tail) or 'no report from the guest'}"
    objects = found.get("objects", {})
    return image.label, image.release, {p: objects.get(os.path.abspath(p), {}) for p in obj_paths}, ""


def check_in_vm(obj_path: str, spec: str, *, timeout: float = 900.0) -> KernelReport:
    """Boot kernel ``spec``, load every program of ``obj_path`` there, one verdict per program (their
    problem is the loader's error). A VM that fails to boot or run gives a report with ``error`` set;
    a kernel that cannot be resolved raises :class:`~corebpf.kernels.KernelError`."""
    label, release, objects, error = run_loads([obj_path], spec, timeout=timeout)
    version = parse_version(release or "")
    rep = KernelReport(f"{label} (vm)", spec, str(version) if version else None)
    if error:
        rep.error = error
        return rep
    for name, r in sorted(objects.get(obj_path, {}).items()):
        v = Verdict(name, rep.name)
        if not r.get("ok"):
            v.problems.append(f"load failed: {r.get('error')}")
        rep.verdicts[name] = v
    return rep
