"""Fuzz: corrupted and truncated BTF never crashes, hangs or allocates without bound.

Every failure must be corebpf's BTFError; errors found while opening name the byte offset.
After a successful open every type is decoded, sized, resolved and printed, which must also
either work or raise BTFError.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.ext import parse_btf_ext
from corebpf.errors import BTFError

from test_btf_reader import BPF_C, all_kinds


def _seeds() -> list[bytes]:
    seeds = [all_kinds("little")[0].raw, all_kinds("big")[0].raw]
    clang = shutil.which("clang")
    if clang:
        import tempfile

        from corebpf.btf.archive import elf_section

        with tempfile.TemporaryDirectory() as d:
            src, obj = Path(d) / "p.c", Path(d) / "p.o"
            src.write_text(BPF_C)
            subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
            data = obj.read_bytes()
            seeds.append(elf_section(data, ".BTF"))
            seeds.append(elf_section(data, ".BTF.ext"))
    return seeds


SEEDS = _seeds()
BTF_SEEDS = [s for i, s in enumerate(SEEDS) if i != 3]
EXT_SEED = SEEDS[3] if len(SEEDS) > 3 else None


def exercise(data: bytes) -> None:
    try:
        btf = BTF.from_bytes(data)
    except BTFError as e:
        assert "offset" in str(e), str(e)
        return
    for type_id in range(btf.start_id, btf.last_id + 1):
        try:
            t = btf[type_id]
        except BTFError as e:
            assert "offset" in str(e), str(e)
            continue
        for f in (lambda: t.size, lambda: t.alignment, t.resolve, t.format_c,
                  lambda: [m.type for m in getattr(t, "members", [])],
                  lambda: [m.is_bitfield for m in getattr(t, "members", [])]):
            try:
                f()
            except BTFError:
                pass
    for name in ("ev", "int", "event", "handler", "u"):
        try:
            btf.find_all(name)
        except BTFError:
            pass


mutation = st.lists(st.tuples(st.integers(min_value=0, max_value=1 << 20), st.integers(0, 255)),
                    min_size=1, max_size=8)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(BTF_SEEDS), edits=mutation)
def test_corrupted_bytes(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    exercise(bytes(data))


@settings(max_examples=300, deadline=2000)
@given(seed=st.sampled_from(BTF_SEEDS), cut=st.integers(min_value=0, max_value=1 << 20))
def test_truncated(seed: bytes, cut: int) -> None:
    data = seed[: cut % len(seed)]
    with pytest.raises(BTFError) as ei:
        BTF.from_bytes(data)
    assert "offset" in str(ei.value)


@settings(max_examples=300, deadline=2000)
@given(seed=st.sampled_from(BTF_SEEDS), word=st.integers(min_value=0, max_value=1 << 16),
       value=st.sampled_from([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x0400FFFF, 0x1300FFFF,
                              0x84000001, 1 << 24]))
def test_hostile_words(seed: bytes, word: int, value: int) -> None:
    """Whole 32-bit words: huge counts, vlen 65535, lengths and offsets in the header."""
    data = bytearray(seed)
    pos = (word * 4) % (len(data) - 3)
    order = "little" if data[0] == 0x9F else "big"
    data[pos:pos + 4] = value.to_bytes(4, order)
    exercise(bytes(data))


def test_huge_claimed_sizes_do_not_allocate() -> None:
    seed = bytearray(BTF_SEEDS[0])
    for field in (12, 20):  # type_len, str_len
        data = bytearray(seed)
        data[field:field + 4] = (0xFFFFFFF0).to_bytes(4, "little")
        with pytest.raises(BTFError, match="offset"):
            BTF.from_bytes(bytes(data))


def test_self_referencing_types_do_not_recurse_forever() -> None:
    b = BTFBuilder()
    b.add_typedef("loop", 2)
    b.add_typedef("pool", 1)
    b.add_array(3, 0, 2)  # an array of itself
    b.add_ptr(5)
    b.add_const(4)  # const -> ptr -> const -> ...
    btf = b.to_btf()
    with pytest.raises(BTFError, match="loop"):
        btf[1].resolve()
    with pytest.raises(BTFError):
        btf[3].size
    assert "<type loop>" in btf[4].format_c() or btf[4].format_c()


@pytest.mark.skipif(EXT_SEED is None, reason="clang is not installed (no .BTF.ext seed)")
@settings(max_examples=300, deadline=2000)
@given(edits=mutation, cut=st.integers(min_value=0, max_value=1 << 16))
def test_btf_ext_corruption(edits: list[tuple[int, int]], cut: int) -> None:
    btf = BTF.from_bytes(BTF_SEEDS[-1])
    data = bytearray(EXT_SEED)
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(8, cut % (len(data) + 1))]
    try:
        parse_btf_ext(bytes(data), btf)
    except BTFError as e:
        assert "offset" in str(e) or "byte order" in str(e), str(e)
