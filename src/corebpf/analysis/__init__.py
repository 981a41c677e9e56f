"""Static analysis of BPF objects: what they need, whether other kernels have it, minimal BTF.

Public API (what ``corebpf inspect``, ``corebpf compat`` and ``corebpf btf minimize`` are built on)::

    from corebpf.analysis import analyze, inspect_object, check_compat, find_targets, minimize

    reqs = analyze(spec)                      # ObjectRequirements: per program helpers, kfuncs, maps,
    p = reqs.programs["handle_exec"]          #   ISA features, min_version / min_reason
    report = inspect_object("prog.bpf.o")     # everything `corebpf inspect --json` prints
    kernels = find_targets(["host", "btfhub/", "vmlinux-5.10", "debian:6.1"], {"*": "5.10"})
    matrix = check_compat(spec, kernels, probe=True)   # CompatReport: .kernels[i].verdicts[prog].problems
    data = minimize([spec, ...], BTF.from_file("vmlinux.btf"))   # raw minimal BTF (bpftool's rules)

Modules: ``kernel_versions`` (the dataset, ``lookup``), ``requirements``, ``reach`` (reachability of
poisoned relocations), ``core_check`` (CO-RE and externs against one target), ``inspect``,
``targets`` (kernels from paths/specs), ``compat``, ``compat_vm`` + ``vmload`` (real loads in QEMU),
``minimize``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["analyze", "inspect_object", "check_compat", "find_targets", "minimize", "KernelVersion", "lookup"]

_LAZY = {"analyze": "requirements", "inspect_object": "inspect", "check_compat": "compat",
         "find_targets": "targets", "minimize": "minimize", "KernelVersion": "kernel_versions",
         "lookup": "kernel_versions"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'corebpf.analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)
