"""CO-RE engine robustness: arbitrary relocation records and instruction bytes against real object
BTF either relocate or raise :class:`CoreRelocationError` -- never another exception, never a hang."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import given, settings, strategies as st

from corebpf.btf.core import CoreRelo, CoreRelocationError, CoreRelocator, TargetSet
from corebpf.btf.ext import BTFExt

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
LOCAL, EXT = BTFExt.from_elf(CORPUS / "core_bench.bpf.o")
TARGET_LOCAL, _ = BTFExt.from_elf(CORPUS / "core_types.bpf.o")
TARGETS = TargetSet.from_btf(TARGET_LOCAL)
REAL = [r for recs in EXT.core_relos.values() for r in recs]

access = st.one_of(
    st.sampled_from([r.access for r in REAL if r.access]),
    st.lists(st.integers(0, 300), min_size=0, max_size=6).map(lambda xs: ":".join(map(str, xs))),
    st.text(alphabet="0123456789:-x ", max_size=12),
)
slot = st.builds(lambda c, r, o, i: struct.pack("<BBhi", c, r, o, i), st.integers(0, 255), st.integers(0, 255),
                 st.integers(-0x8000, 0x7FFF), st.integers(-(1 << 31), (1 << 31) - 1))


@settings(max_examples=400, deadline=2000)
@given(type_id=st.integers(0, LOCAL.last_id + 3), access=access, kind=st.integers(0, 14),
       insns=st.lists(slot, min_size=1, max_size=3), at=st.integers(0, 3))
def test_arbitrary_records_never_crash(type_id: int, access: str, kind: int, insns: list[bytes], at: int):
    code = bytearray(b"".join(insns))
    rec = CoreRelo(8 * at, type_id, 0, kind, access or "")  # type: ignore[arg-type]
    try:
        res = CoreRelocator(LOCAL, TARGETS).relocate(code, [rec], prog_name="fuzz")
    except CoreRelocationError as e:
        assert str(e)
        return
    assert len(code) == 8 * len(insns)
    assert len(res) == (1 if at < len(insns) else 0)
