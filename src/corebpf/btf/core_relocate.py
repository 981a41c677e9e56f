"""Resolve and apply a program's CO-RE relocations (libbpf's ``bpf_core_calc_relo_insn`` and
``bpf_object__relocate_core``), producing one :class:`Resolution` per relocation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Optional, Protocol, Sequence

from ..errors import BTFError
from .core_calc import RelocResult, calc_relo, match_spec
from .core_patch import patch_insn
from .ext import CoreRelo  # the .BTF.ext record: the one relocation record type of corebpf
from .core_spec import CoreReloKind, Spec, SpecError, describe_spec, format_spec, kind_str, parse_spec
from .types import Type

if TYPE_CHECKING:  # pragma: no cover
    from .core_targets import TargetSet
    from .reader import BTF

__all__ = ["CoreRelo", "CoreReloRecord", "CoreRelocationError", "Resolution", "CoreRelocator", "relocate_program"]


class CoreRelocationError(BTFError):
    """A CO-RE relocation libbpf would refuse (the whole load fails): malformed access string,
    ambiguous candidates, an instruction that does not carry the expected value...

    Attributes: ``prog_name``, ``relo_index``, ``insn_index`` and ``spec`` (libbpf's spec text, '' if
    the spec could not be parsed).
    """

    def __init__(self, message: str, *, prog_name: str = "", relo_index: int = -1, insn_index: int = -1,
                 spec: str = "") -> None:
        super().__init__(message)
        self.prog_name = prog_name
        self.relo_index = relo_index
        self.insn_index = insn_index
        self.spec = spec


class CoreReloRecord(Protocol):
    """What a CO-RE relocation record must provide (:class:`corebpf.btf.ext.CoreRelo` does). An
    ``access`` attribute, when present and not empty, is used instead of looking ``access_str_off``
    up in the local BTF's strings."""

    insn_off: int
    type_id: int
    access_str_off: int
    kind: int


@dataclass(eq=False)
class Resolution:
    """How one relocation resolved (what ``corebpf inspect`` shows and errors quote).

    Attributes:
        index: the relocation's position in the input sequence (libbpf's "relo #N").
        insn_index: the instruction it patches, relative to the program's first instruction.
        kind: the relocation kind.
        access: the raw access string (``"0:3"``).
        candidates: how many candidate types were tried.
        orig_val / new_val: the value the compiler wrote and the value for the target.
        insn_value: the value that was in the instruction before patching.
        poisoned: the instruction was replaced by ``call 0xbad2310``.
        reason: why it was poisoned ('' otherwise).

    Texts, computed on first use: ``spec`` (``struct inode.i_atime``), ``local`` (libbpf's spec text
    ``<byte_off> [7] struct inode.i_atime (0:3 @ offset 24)``), ``target`` (``vmlinux [1234] struct
    inode``, None when nothing matched), ``target_spec`` (libbpf's text of the match, or None) and
    ``explanation``.
    """

    index: int
    insn_index: int
    kind: CoreReloKind
    access: str
    candidates: int
    orig_val: int
    new_val: int
    insn_value: int
    poisoned: bool
    reason: str
    local_spec: Spec = field(repr=False)
    target_match: Optional[Spec] = field(repr=False)
    target_btf_name: str = field(default="", repr=False)

    @cached_property
    def spec(self) -> str:
        """The local access in C-like form: ``struct inode.i_atime``, ``enum pid_type::PIDTYPE_TGID``."""
        return describe_spec(self.local_spec)

    @cached_property
    def local(self) -> str:
        """libbpf's text of the local spec."""
        return format_spec(self.local_spec)

    @cached_property
    def target(self) -> Optional[str]:
        """The chosen candidate, ``vmlinux [1234] struct inode`` (None when nothing matched)."""
        m = self.target_match
        if m is None:
            return None
        t = m.btf[m.root_type_id]
        return f"{self.target_btf_name} [{m.root_type_id}] {kind_str(t)} {t.name or '<anon>'}"

    @cached_property
    def target_spec(self) -> Optional[str]:
        """libbpf's text of the spec matched in the target (None when nothing matched)."""
        return format_spec(self.target_match) if self.target_match is not None else None

    @property
    def explanation(self) -> str:
        """libbpf's verifier-log line for a poisoned relocation: ``failed to resolve CO-RE relocation <spec>``."""
        return f"failed to resolve CO-RE relocation {self.local}"

    def shifted(self, offset: int) -> "Resolution":
        """The same resolution with ``insn_index`` moved by ``offset`` (a subprogram appended to a
        program at instruction ``offset``)."""
        return dataclasses.replace(self, insn_index=self.insn_index + offset)

    def as_dict(self) -> dict[str, object]:
        """Plain values for ``--json`` output."""
        return {"index": self.index, "insn": self.insn_index, "kind": self.kind.short, "spec": self.spec,
                "local": self.local, "access": self.access, "target": self.target, "target_spec": self.target_spec,
                "candidates": self.candidates, "orig_val": self.orig_val, "new_val": self.new_val,
                "insn_value": self.insn_value, "poisoned": self.poisoned, "reason": self.reason}

    def __str__(self) -> str:
        if self.poisoned:
            return f"insn #{self.insn_index}: {self.kind.short} {self.spec}: poisoned ({self.reason})"
        where = f" in {self.target}" if self.target else " (not found)"
        return f"insn #{self.insn_index}: {self.kind.short} {self.spec}{where}: {self.orig_val} -> {self.new_val}"


class CoreRelocator:
    """Relocates programs of one object against one :class:`TargetSet`.

    Like libbpf, it keeps the candidate list of each local type across programs and prunes it to the
    candidates that matched a relocation, so later relocations of the same type only see those.
    """

    def __init__(self, local_btf: "BTF", targets: "TargetSet") -> None:
        self.local_btf = local_btf
        self.targets = targets
        self._cands: dict[int, list[Type]] = {}

    def relocate(self, insns: bytearray, relos: Sequence[CoreReloRecord], *, prog_name: str = "",
                 section_offset: int = 0) -> list[Resolution]:
        """Patch ``insns`` in place; one :class:`Resolution` per relocation whose instruction is in ``insns``."""
        out = []
        n = len(insns) // 8
        for i, rec in enumerate(relos):
            rel = rec.insn_off - section_offset
            if rel % 8:
                raise CoreRelocationError(f"prog '{prog_name}': relo #{i}: instruction offset {rec.insn_off} is "
                                          "not a multiple of 8", prog_name=prog_name, relo_index=i)
            idx = rel // 8
            if not 0 <= idx < n:
                continue  # belongs to another program of the section (or an eliminated weak subprogram)
            out.append(self._relocate_one(insns, rec, i, idx, prog_name))
        return out

    def _relocate_one(self, insns: bytearray, rec: CoreReloRecord, i: int, idx: int, prog: str) -> Resolution:
        where = f"prog '{prog}': relo #{i} at insn #{idx}"
        try:
            kind = CoreReloKind(rec.kind)
        except ValueError:
            raise CoreRelocationError(f"{where}: unrecognized CO-RE relocation kind {rec.kind}", prog_name=prog,
                                      relo_index=i, insn_index=idx) from None
        btf = self.local_btf
        try:
            local_type = btf[rec.type_id]
            access = getattr(rec, "access", "")
            if not access:
                access = btf.string_at(rec.access_str_off)
        except BTFError as e:
            raise CoreRelocationError(f"{where}: {e}", prog_name=prog, relo_index=i, insn_index=idx) from None
        try:
            local = parse_spec(btf, rec.type_id, access, kind)
        except SpecError as e:
            raise CoreRelocationError(
                f"{where}: parsing [{rec.type_id}] {kind_str(local_type)} {local_type.name or '<anon>'} + {access} "
                f"failed: {e}", prog_name=prog, relo_index=i, insn_index=idx) from None
        try:
            res, targ, ncands = self._resolve(kind, local, local_type, where)
            poisoned, insn_value = patch_insn(insns, idx * 8, res, where)
        except CoreRelocationError as e:
            if e.relo_index < 0:  # raised by the candidate search: say which relocation it was
                e.prog_name, e.relo_index, e.insn_index, e.spec = prog, i, idx, format_spec(local)
            raise
        except (SpecError, BTFError) as e:
            text = format_spec(local)
            detail = str(e).removeprefix(f"{where}: ")
            raise CoreRelocationError(f"{where}: {text}: {detail}", prog_name=prog, relo_index=i, insn_index=idx,
                                      spec=text) from None
        return Resolution(i, idx, kind, access, ncands, res.orig_val, res.new_val, insn_value, poisoned,
                          res.reason if poisoned else "", local, targ,
                          self.targets.btf_name(targ.btf) if targ is not None else "")

    def _resolve(self, kind: CoreReloKind, local: Spec, local_type: Type,
                 where: str) -> tuple[RelocResult, Optional[Spec], int]:
        if kind == CoreReloKind.TYPE_ID_LOCAL:
            # needs no candidate; the id may change when objects are linked, so it is not checked
            return RelocResult(local.root_type_id, local.root_type_id, validate=False), None, 0
        if not local_type.name:
            raise CoreRelocationError(f"{where}: <{kind.short}> relocation doesn't support anonymous types")
        cands = self._cands.get(local.root_type_id)
        if cands is None:
            cands = self._cands[local.root_type_id] = self.targets.candidates(local_type)
        best: Optional[RelocResult] = None
        best_spec: Optional[Spec] = None
        kept: list[Type] = []
        for cand in cands:
            spec = match_spec(local, cand.btf, cand.id)  # type: ignore[arg-type]
            if spec is None:
                continue
            res = calc_relo(kind, local, spec, where)
            if best is None:
                best, best_spec = res, spec
            elif spec.bit_offset != best_spec.bit_offset:  # type: ignore[union-attr]
                raise CoreRelocationError(
                    f"{where}: field offset ambiguity: {format_spec(spec)} vs {format_spec(best_spec)} "  # type: ignore[arg-type]
                    f"({spec.bit_offset} != {best_spec.bit_offset} bits)")  # type: ignore[union-attr]
            elif res.poison != best.poison or res.new_val != best.new_val:
                raise CoreRelocationError(
                    f"{where}: relocation decision ambiguity: {format_spec(spec)} gives "
                    f"{'failure' if res.poison else 'success'} {res.new_val}, {format_spec(best_spec)} gives "  # type: ignore[arg-type]
                    f"{'failure' if best.poison else 'success'} {best.new_val}")
            kept.append(cand)
        n = len(cands)
        if kept:
            cands[:] = kept  # later relocations of this type only consider what matched here
        if best is None:
            best = calc_relo(kind, local, None, where)
            if best.poison:
                what = f"{kind_str(local_type)} {local_type.essential_name}"
                best.reason = (f"no {what} in the target BTF" if not n else
                               f"none of the {n} candidate {what} types in the target BTF matches {describe_spec(local)}")
            return best, None, n
        return best, best_spec, n


def relocate_program(insns: bytearray, relos: Sequence[CoreReloRecord], local_btf: "BTF", targets: "TargetSet", *,
                     prog_name: str = "", section_offset: int = 0,
                     relocator: Optional[CoreRelocator] = None) -> list[Resolution]:
    """Relocate one program (see :mod:`corebpf.btf.core`); pass ``relocator`` to share the candidate
    cache between the programs of one object."""
    core = relocator or CoreRelocator(local_btf, targets)
    return core.relocate(insns, relos, prog_name=prog_name, section_offset=section_offset)
