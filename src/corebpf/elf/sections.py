"""Section name -> program type, expected attach type, flags and attach target, as libbpf reads ``SEC()``.

The table itself is generated from libbpf's ``section_defs[]`` (see ``_sections.py`` and
``tools/gen_sections.py``); this module only matches names against it, in libbpf's order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from .._sys._generated import AttachType, ProgType
from . import _sections as S

__all__ = ["SectionDef", "match_section", "SECTION_DEFS", "BPF_F_SLEEPABLE", "BPF_F_XDP_HAS_FRAGS"]

SECTION_DEFS = S.SECTION_DEFS
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5


@dataclass(frozen=True)
class SectionDef:
    """What a section name means to libbpf.

    ``attach_type_name`` is kept even when this kernel's UAPI lacks it (then ``attach_type`` is None
    and the program cannot load here). ``attach_target`` is the part after the first ``/`` for
    prefix entries (``"sched_switch"`` in ``tp_btf/sched_switch``).
    """

    prefix: str
    prog_type: ProgType
    attach_type_name: str
    attach_type: Optional[AttachType]
    flags: int
    attach_target: str

    @property
    def sleepable(self) -> bool:
        return bool(self.flags & S.SEC_SLEEPABLE)

    @property
    def attach_btf(self) -> bool:
        """The attach target is a BTF id (fentry, tp_btf, lsm, iter, freplace...)."""
        return bool(self.flags & S.SEC_ATTACH_BTF)

    @property
    def prog_flags(self) -> int:
        """``prog_flags`` libbpf passes to BPF_PROG_LOAD for this section."""
        flags = BPF_F_SLEEPABLE if self.flags & S.SEC_SLEEPABLE else 0
        if self.flags & S.SEC_XDP_FRAGS and self.prog_type == ProgType.XDP:
            flags |= BPF_F_XDP_HAS_FRAGS
        return flags


def _matches(prefix: str, name: str) -> bool:
    if prefix.endswith("/"):
        return name.startswith(prefix)
    if prefix.endswith("+"):
        base = prefix[:-1]
        return name == base or name.startswith(base + "/")
    return name == prefix


@functools.lru_cache(maxsize=1024)
def match_section(name: str) -> Optional[SectionDef]:
    """The libbpf section definition matching ``name`` (first match wins), or None if libbpf would
    not know the section."""
    for prefix, ptype, atype, flags in SECTION_DEFS:
        if not _matches(prefix, name):
            continue
        target = ""
        if prefix.endswith("+") or prefix.endswith("/"):
            base = prefix.rstrip("+")
            if name != base.rstrip("/") and "/" in name[len(base.rstrip("/")):]:
                target = name[len(base.rstrip("/")) + 1:]
        attach = getattr(AttachType, atype, None) if atype else None
        return SectionDef(prefix, ProgType[ptype], atype, attach, flags, target)
    return None
