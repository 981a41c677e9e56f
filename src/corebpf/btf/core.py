"""The CO-RE engine: relocate a program's instructions against the target kernel's BTF, as libbpf does.

Interface for the loader (stable)::

    from corebpf.btf.core import CoreRelo, CoreRelocator, TargetSet, relocate_program

    targets = TargetSet.vmlinux()            # running kernel: vmlinux BTF, then module BTFs (lazily,
                                             # only when vmlinux has no candidate; a corrupt module BTF
                                             # is skipped with a warning)
    targets = TargetSet.from_file(path)      # a BTF file the user gives (raw, ELF .BTF, BTFHub archive);
                                             # like libbpf's btf_custom_path: no module BTFs
    targets = TargetSet.from_btf(btf, modules=[...])   # any BTF objects (tests, `corebpf compat`)

    # one relocator per object load: it keeps libbpf's per-object candidate cache, so a relocation
    # that rules a candidate out also rules it out for later relocations of the same local type
    core = CoreRelocator(local_btf, targets)
    resolutions = core.relocate(insns, relos, prog_name="handle_exec", section_offset=0)

    # or, for one program:
    resolutions = relocate_program(insns, relos, local_btf, targets, prog_name="...")

``insns`` is a ``bytearray`` of the program's raw instructions (8 bytes each); it is patched in place.
``relos`` is a sequence of records with ``insn_off`` (bytes), ``type_id``, ``access_str_off`` (or a
non-empty ``access`` string) and ``kind``: the ``.BTF.ext`` records (``corebpf.btf.ext.CoreRelo``,
re-exported here as :class:`CoreRelo`). ``insn_off - section_offset`` must be the byte offset of the
instruction inside ``insns`` (pass the program's byte offset in its ELF section as ``section_offset``
when the records carry section offsets). Relocations whose instruction lies outside ``insns`` are ignored (libbpf does
the same for eliminated weak subprograms), so the loader may pass a whole section's records.

Each relocation gives one :class:`Resolution` (in input order): ``kind``, ``insn_index`` (relative to
the program), ``spec`` (``"struct inode.i_atime"``), ``local`` (libbpf's full spec text
``"<byte_off> [7] struct inode.i_atime (0:3 @ offset 24)"``), ``target`` (``"vmlinux [1234] struct
inode"`` or None), ``orig_val``/``new_val``, ``poisoned`` and ``reason``, and ``explanation`` (the
message libbpf prints when a poisoned instruction is reached: ``"failed to resolve CO-RE relocation
<byte_off> [7] struct inode.i_atime (0:3 @ offset 24)"``).

Unresolvable relocations are *poisoned*, not errors: the instruction becomes ``call 0xbad2310``
(both slots of a ld_imm64), which the verifier rejects only if it is reachable ("invalid func
unknown#195896080"). Field-exists, type-exists/matches and enumval-exists relocations that do not
resolve give 0 instead. Errors that libbpf treats as fatal (a malformed access string, several
candidates resolving differently, an instruction that does not carry the expected value, an offset
over 32767, a bitfield no 64-bit load can read) raise :class:`CoreRelocationError`.

After a failed load, map the verifier's failing instruction back to its relocation::

    res = find_poisoned(resolutions, insn_index)           # None if that instruction was not poisoned
    text = explain_verifier_log(log, resolutions)          # libbpf-style rewrite of the log, or None

When subprograms are appended after relocation, shift each function's resolutions to where its code
starts in the loaded program and search them all: ``[r.shifted(start) for r in sub_resolutions]``
(or pass ``offset=start`` for one function's list).
"""

from __future__ import annotations

from .core_patch import POISON_IMM, find_poisoned, explain_verifier_log
from .core_relocate import CoreRelo, CoreRelocationError, CoreRelocator, Resolution, relocate_program
from .core_spec import CoreReloKind, format_spec, parse_spec
from .core_targets import TargetSet

__all__ = [
    "CoreRelo", "CoreReloKind", "CoreRelocationError", "CoreRelocator", "Resolution", "TargetSet",
    "relocate_program", "find_poisoned", "explain_verifier_log", "POISON_IMM", "parse_spec", "format_spec",
]
