"""BPF ELF objects -> :class:`ObjectSpec` (programs, maps, variables, externs), with no kernel access.

    >>> spec = ObjectSpec.from_file("prog.bpf.o")
    >>> spec.programs["handle_exec"].type, spec.maps["events"].max_entries
    >>> spec.variables["target_pid"] = 42        # a const volatile, before load
    >>> obj = spec.load()

Modules: ``reader`` (ELF64), ``sections`` (libbpf's SEC() table, generated in ``_sections``),
``programs`` (functions per section), ``maps`` (BTF/legacy/global data maps), ``externs``
(kconfig/ksym), ``relocations``, ``linker`` (subprogram appending, used at load), ``specs``.
"""

from __future__ import annotations

from .objectspec import MissingLicenseWarning, ObjectSpec
from .sections import SectionDef, match_section
from .specs import (
    PIN_BY_NAME, PIN_NONE, ExternKind, ExternSpec, MapSpec, ProgramSpec, Relocation, RelocKind, VariableSpec,
    Variables,
)

__all__ = ["ObjectSpec", "ProgramSpec", "MapSpec", "VariableSpec", "ExternSpec", "ExternKind", "Relocation",
           "RelocKind", "Variables", "SectionDef", "match_section", "MissingLicenseWarning", "PIN_NONE",
           "PIN_BY_NAME"]
