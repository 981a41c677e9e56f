"""Will this object load on that kernel? A verdict per kernel and program, without loading.

For each kernel (:class:`~.targets.KernelTarget`) and each entry program of the object:

* CO-RE: every relocation resolved against the kernel's BTF; a poisoned relocation the verifier would
  reach fails the program ("missing field struct task_struct.state"), a guarded one does not.
* externs: typed ``__ksym`` variables and kfuncs must be in the kernel's BTF (a missing non-weak
  extern fails the whole object load, so every program gets it).
* program type, expected attach type, helpers and map types: looked up in the kernel's own BTF enums
  (``enum bpf_prog_type``, ``bpf_attach_type``, ``bpf_func_id``, ``bpf_map_type``), which include
  distribution backports; when the BTF lacks an enum, the kernel version is compared with the
  kernel-versions dataset ("helper bpf_loop needs >= 5.17").
* instruction-set extensions, features and kfunc release versions: kernel version vs dataset.
* attach targets that are BTF ids (tp_btf, fentry/fexit/fmod_ret, lsm, iter): the function or
  tracepoint must exist in the kernel's BTF.
* on the running kernel with live probes (``probe=True``): attach kinds this host refuses (fentry/LSM
  under lockdown: "needs trampolines: refused here").

What no static check can see (verifier complexity, helpers allowed per program type, kconfig values
of other kernels) is left to ``--vm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .core_check import check_core, check_externs
from .kernel_versions import KernelVersion, Requirement
from .requirements import ObjectRequirements, ProgramRequirements, analyze
from .targets import KernelTarget

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..elf.objectspec import ObjectSpec

__all__ = ["Verdict", "KernelReport", "CompatReport", "check_compat", "check_kernel"]

# attach types whose programs load with an attach_btf_id: (how to find the target in BTF, live probe)
_BTF_ATTACH = {
    "TRACE_RAW_TP": ("typedef", "btf_trace_{}", "tp_btf"),
    "TRACE_FENTRY": ("func", "{}", "fentry"),
    "TRACE_FEXIT": ("func", "{}", "fexit"),
    "MODIFY_RETURN": ("func", "{}", "fmod_ret"),
    "LSM_MAC": ("func", "bpf_lsm_{}", "lsm"),
    "TRACE_ITER": ("func", "bpf_iter_{}", "iter"),
}
_TRAMPOLINES = {"fentry", "fexit", "fmod_ret", "lsm"}
# enum in the kernel's BTF and the prefix of its enumerators, per dataset table
_ENUMS = {"helpers": ("bpf_func_id", "BPF_FUNC_"), "prog_types": ("bpf_prog_type", "BPF_PROG_TYPE_"),
          "map_types": ("bpf_map_type", "BPF_MAP_TYPE_"), "attach_types": ("bpf_attach_type", "BPF_")}


@dataclass
class Verdict:
    """One program on one kernel: ``ok`` unless ``problems`` (each a short sentence); ``notes`` are
    things worth knowing that do not fail the load (guarded relocations, unknown versions)."""

    program: str
    kernel: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def text(self) -> str:
        """``ok`` or the problems joined with ``; ``."""
        return "ok" if self.ok else "; ".join(self.problems)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"program": self.program, "kernel": self.kernel, "ok": self.ok, "problems": self.problems,
                "notes": self.notes}


@dataclass
class KernelReport:
    """All verdicts for one kernel, or the ``error`` that kept it from being checked."""

    name: str
    source: str
    version: Optional[str]
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Checked, and every program is ok."""
        return self.error is None and all(v.ok for v in self.verdicts.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {"name": self.name, "source": self.source, "version": self.version, "error": self.error,
                "ok": self.ok, "programs": {n: v.as_dict() for n, v in self.verdicts.items()}}


@dataclass
class CompatReport:
    """The matrix: ``kernels`` in the order given, ``programs`` sorted, object-wide ``min_kernel``."""

    object: str
    programs: list[str]
    kernels: list[KernelReport]
    min_kernel: Optional[str] = None

    @property
    def ok(self) -> bool:
        """Every program is ok on every kernel."""
        return all(k.ok for k in self.kernels)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (the ``--json`` output)."""
        return {"object": self.object, "ok": self.ok, "min_kernel": self.min_kernel, "programs": self.programs,
                "kernels": [k.as_dict() for k in self.kernels]}


# -- BTF facts ------------------------------------------------------------------------------------
def _enum_names(btf: "BTF", enum: str, prefix: str) -> Optional[set[str]]:
    """Enumerator names of ``enum`` without ``prefix`` (None if the BTF has no such enum)."""
    from ..btf.types import Enum

    for t in btf.find_all(enum):
        if isinstance(t, Enum) and t.name == enum:
            return {v.name[len(prefix):] for v in t.values if v.name.startswith(prefix)}
    return None


def _has(btf: "BTF", name: str, how: str) -> bool:
    from ..btf.types import Kind

    kind = Kind.FUNC if how == "func" else Kind.TYPEDEF
    return any(t.name == name for t in btf.find_all(name, kind))


# -- verdicts -------------------------------------------------------------------------------------
def _version_problem(req: Requirement, version: Optional[KernelVersion]) -> Optional[str]:
    if req.version is None or version is None or version >= req.version:
        return None
    return f"{req.label} needs >= {req.version}"


def _program_verdict(r: ProgramRequirements, target: KernelTarget, btf: "BTF",
                     enums: dict[str, Optional[set[str]]], probe: bool) -> Verdict:
    v = Verdict(r.name, target.name)
    unknown_versions = []
    for req in r.requirements:
        names = enums.get(req.what)
        if names is not None:
            key = req.name.removeprefix("bpf_") if req.what == "helpers" else req.name
            if key not in names:
                since = f" (mainline since {req.version})" if req.version is not None else ""
                v.problems.append(f"{req.label} missing{since}")
            continue
        if req.version is not None and target.version is None:
            unknown_versions.append(req.label)
        problem = _version_problem(req, target.version)
        if problem:
            v.problems.append(problem)
    if unknown_versions:
        v.notes.append(f"kernel version unknown: not checked: {', '.join(unknown_versions)} (use --kernel-version)")
    how = _BTF_ATTACH.get(r.attach_type or "")
    if how is not None and r.attach_to:
        kind, pattern, method = how
        name = pattern.format(r.attach_to.split(":")[-1])
        if not _has(btf, name, kind):
            v.problems.append(f"attach target {name} ({kind}) missing")
        if probe and target.host:
            from .. import features

            res = features.attach_method(method)
            if not res.supported:
                what = "needs trampolines: refused here" if method in _TRAMPOLINES else f"{method} refused here"
                v.problems.append(f"{what} ({res.reason})")
    return v


def check_kernel(spec: "ObjectSpec", reqs: ObjectRequirements, target: KernelTarget, *,
                 probe: bool = False) -> KernelReport:
    """Verdicts for every program of ``spec`` on one kernel (``probe``: use the running kernel's live
    feature probes when ``target`` is the host)."""
    from ..btf.core import TargetSet
    from ..errors import CoreBPFError

    rep = KernelReport(target.name, target.source, str(target.version) if target.version else None)
    try:
        btf = target.btf()
        if btf.last_id >= 1:
            btf.kind_of(1)  # a broken type section fails here, with the kernel named, not mid-check
        tset = TargetSet.vmlinux() if target.host else TargetSet.from_btf(btf, name=target.name)
        enums = {what: _enum_names(btf, *e) for what, e in _ENUMS.items()}
        core = check_core(spec, tset)
        externs = check_externs(spec, tset, host=target.host)
    except (CoreBPFError, OSError) as e:
        rep.error = str(e)
        return rep
    object_problems = [f"{e.kind} {e.name} missing" + (f" (in {e.where})" if e.where else "")
                       for e in externs if e.status == "missing"]
    for name, r in reqs.programs.items():
        v = _program_verdict(r, target, btf, enums, probe)
        pc = core.programs[name]
        if pc.error:
            v.problems.append(f"CO-RE error: {pc.error}")
        for _fn, res in pc.fatal:
            v.problems.append(f"{'missing' if res.target is None else 'unresolvable'} {res.kind.short} {res.spec}")
        if pc.guarded:
            v.notes.append(f"{len(pc.guarded)} unresolved CO-RE relocation(s) in guarded (dead) code: "
                           + ", ".join(sorted({res.spec for _, res in pc.guarded})))
        v.problems += [p for p in object_problems if p not in v.problems]
        for e in externs:
            if e.status == "weak-missing" and (e.name in r.kfuncs or e.name in r.ksyms):
                v.notes.append(f"weak {e.kind} {e.name} absent (0)")
        strict_kconfig = [e.name for e in externs if e.kind == "kconfig" and e.status == "unchecked" and not e.weak
                          and e.name in r.kconfig and not e.name.startswith("LINUX_")]
        if strict_kconfig:
            v.notes.append(f"kconfig {', '.join(strict_kconfig)} read on the node at load: it needs /proc/config.gz "
                           f"or /boot/config-$(uname -r) there (or declare them __weak)")
        rep.verdicts[name] = v
    return rep


def check_compat(spec: "ObjectSpec", targets: list[KernelTarget], *, probe: bool = False) -> CompatReport:
    """The compatibility matrix of ``spec`` against ``targets``."""
    reqs = analyze(spec)
    kernels = [check_kernel(spec, reqs, t, probe=probe) for t in targets]
    return CompatReport(spec.source, sorted(reqs.programs), kernels,
                        str(reqs.min_version) if reqs.min_version else None)
