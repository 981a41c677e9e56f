"""CO-RE relocations and externs of an object checked against one kernel's BTF, without loading.

:func:`check_core` relocates every function (entry programs and subprograms) against a
:class:`~corebpf.btf.core.TargetSet`, links each program as the loader would, and tells which
poisoned relocations the verifier would reach (:mod:`.reach`): those make the load fail, the others
sit in branches that ``bpf_core_field_exists()``-style guards make dead. :func:`check_externs` looks
the object's ``__ksym`` externs up in the target BTF.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from ..elf.specs import ExternKind
from ..errors import CoreBPFError
from .reach import reachable

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import BTF
    from ..btf.core import Resolution, TargetSet
    from ..elf.objectspec import ObjectSpec

__all__ = ["CoreCheck", "ProgramCore", "ExternCheck", "check_core", "check_externs"]


@dataclass
class ProgramCore:
    """CO-RE outcome of one entry program: its resolutions (with the function each belongs to), the
    poisoned ones the verifier reaches (``fatal``), those it cannot reach (``guarded``), and a fatal
    relocation error (ambiguity, malformed record) if any."""

    name: str
    resolutions: list[tuple[str, "Resolution"]] = field(default_factory=list)
    fatal: list[tuple[str, "Resolution"]] = field(default_factory=list)
    guarded: list[tuple[str, "Resolution"]] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        """No reachable poisoned relocation and no relocation error."""
        return self.error is None and not self.fatal


@dataclass
class CoreCheck:
    """:func:`check_core`'s result: per-function resolutions and errors, per-program outcomes."""

    functions: dict[str, list["Resolution"]]
    errors: dict[str, str]
    programs: dict[str, ProgramCore]


@dataclass
class ExternCheck:
    """Where one extern resolves in the target: ``status`` is ``ok``, ``missing`` (a non-weak extern the
    kernel lacks: the load fails), ``weak-missing`` (a ``__weak`` extern left 0) or ``unchecked``
    (kconfig values and typeless ksyms are only known on the node itself)."""

    name: str
    kind: str
    weak: bool
    status: str
    where: str = ""

    def as_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return {"name": self.name, "kind": self.kind, "weak": self.weak, "status": self.status, "where": self.where}


def check_core(spec: "ObjectSpec", targets: "TargetSet") -> CoreCheck:
    """Relocate every function of ``spec`` against ``targets`` and judge each entry program."""
    from ..btf.core import CoreRelocationError, CoreRelocator
    from ..elf.linker import link_program

    funcs = {**spec.subprograms, **spec.programs}
    code: dict[str, bytearray] = {}
    out = CoreCheck({}, {}, {})
    relocator = CoreRelocator(spec.btf, targets) if spec.btf is not None else None
    for name, f in funcs.items():
        if not f.core_relos or relocator is None:
            continue
        insns = bytearray(f.instructions)
        try:
            out.functions[name] = relocator.relocate(insns, f.core_relos, prog_name=name)
            code[name] = insns
        except CoreRelocationError as e:
            out.errors[name] = str(e)
    for name, prog in spec.programs.items():
        pc = ProgramCore(name)
        out.programs[name] = pc
        try:
            linked = link_program(spec, prog, code)
        except CoreBPFError as e:
            pc.error = f"cannot link: {e}"
            continue
        for fname in linked.layout:
            if fname in out.errors:
                pc.error = out.errors[fname]
            pc.resolutions += [(fname, r) for r in out.functions.get(fname, [])]
        if not any(r.poisoned for _, r in pc.resolutions):
            continue
        live = reachable(bytes(linked.insns))
        for fname, r in pc.resolutions:
            if r.poisoned:
                (pc.fatal if linked.layout[fname] + r.insn_index in live else pc.guarded).append((fname, r))
    return out


def _btf_has(btf: "BTF", name: str, func: bool) -> bool:
    from ..btf.types import Kind

    kind = Kind.FUNC if func else Kind.VAR
    return any(t.name == name for t in btf.find_all(name, kind))


def _kallsyms(cache: dict[str, object]) -> Optional[set[str]]:
    """Symbol names of /proc/kallsyms (None if unreadable), read once per check."""
    if "kallsyms" not in cache:
        try:
            with open("/proc/kallsyms") as f:
                cache["kallsyms"] = {line.split()[2] for line in f if line.count(" ") >= 2}
        except OSError:
            cache["kallsyms"] = None
    return cache["kallsyms"]  # type: ignore[return-value]


def _host_check(ext: "object", kind: str, cache: dict[str, object]) -> Optional["ExternCheck"]:
    """kconfig values and typeless ksyms of the running kernel (None when they cannot be read)."""
    name = ext.name  # type: ignore[attr-defined]
    weak = ext.weak  # type: ignore[attr-defined]
    if kind == "kconfig":
        if name.startswith("LINUX_"):
            return ExternCheck(name, kind, weak, "ok", "libbpf synthetic")
        if "kconfig" not in cache:
            from ..node.kconfig import load_kconfig

            cache["kconfig"] = load_kconfig()
        kc = cache["kconfig"]
        if not kc.available:  # type: ignore[attr-defined]
            return None
        # an option absent from an available config reads as "n" (libbpf does the same)
        return ExternCheck(name, kind, weak, "ok", f"{kc.get(name) or 'n'} ({kc.source})")  # type: ignore[attr-defined]
    syms = _kallsyms(cache)
    if syms is None:
        return None
    found = name in syms  # type: ignore[operator]
    return ExternCheck(name, kind, weak, "ok" if found else ("weak-missing" if weak else "missing"),
                       "/proc/kallsyms" if found else "")


def check_externs(spec: "ObjectSpec", targets: Optional["TargetSet"], *, host: bool = False) -> list[ExternCheck]:
    """Each extern of ``spec`` against the target's BTF (vmlinux, then its modules when the
    :class:`TargetSet` has them); ``targets`` None checks nothing (all ``unchecked``). With ``host``
    the target is the running kernel: kconfig values and typeless ksyms (``/proc/kallsyms``) are
    checked too."""
    out = []
    cache: dict[str, object] = {}
    for ext in spec.externs.values():
        kind = "kconfig" if ext.kind == ExternKind.KCONFIG else ("kfunc" if ext.is_func else "ksym")
        if host and (kind == "kconfig" or not ext.typed):
            found = _host_check(ext, kind, cache)
            if found is not None:
                out.append(found)
                continue
        if ext.kind == ExternKind.KCONFIG or not ext.typed or targets is None:
            out.append(ExternCheck(ext.name, kind, ext.weak, "unchecked",
                                   "kernel config" if kind == "kconfig" else "/proc/kallsyms"))
            continue
        lookup = ext.essential_name if ext.is_func else ext.name
        where = ""
        if _btf_has(targets.main, lookup, ext.is_func):
            where = targets.name
        else:
            for mod in targets.modules:
                try:
                    if _btf_has(mod, lookup, ext.is_func):
                        where = mod.name or "module"
                        break
                except CoreBPFError:
                    continue
        status = "ok" if where else ("weak-missing" if ext.weak else "missing")
        if where and host and kind == "ksym":
            # the kernel finds a typed ksym variable's address through kallsyms: without
            # CONFIG_KALLSYMS_ALL data symbols are not there and the verifier refuses the load
            syms = _kallsyms(cache)
            if syms is not None and ext.name not in syms:
                status = "weak-missing" if ext.weak else "missing"
                where = f"{where} BTF, but not in /proc/kallsyms (CONFIG_KALLSYMS_ALL off?)"
        out.append(ExternCheck(ext.name, kind, ext.weak, status, where))
    return out
