"""Fuzzing: mutated corpus objects never crash or hang the parser (or the linker that runs on what it
accepts); the only errors are ELFError and BTFError."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corebpf.elf import ObjectSpec
from corebpf.elf.linker import link_program
from corebpf.elf.reader import ELFFile
from corebpf.errors import BTFError, ELFError

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SEEDS = {p.name: p.read_bytes() for p in sorted(CORPUS.glob("*.bpf.o"))
         if p.name in ("globals.bpf.o", "obj_map_in_map.bpf.o", "obj_bpf2bpf.bpf.o", "obj_kconfig.bpf.o",
                       "obj_ksyms.bpf.o", "obj_legacy_maps.bpf.o", "core_fields.bpf.o", "tailcall.bpf.o")}


def _interesting_ranges(data: bytes) -> list[tuple[int, int]]:
    """Header, section headers and the sections a loader reads (where mutations matter most)."""
    elf = ELFFile(data)
    out = [(0, 64)]
    shoff = int.from_bytes(data[40:48], "little")
    out.append((shoff, len(elf.sections) * 64))
    for s in elf.sections:
        if s.size and s.type != 8 and "debug" not in s.name:
            out.append((s.offset, s.size))
    return out


RANGES = {name: _interesting_ranges(data) for name, data in SEEDS.items()}


def _check(data: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            spec = ObjectSpec.from_bytes(data)
        except (ELFError, BTFError):
            return
        for prog in spec.programs.values():
            try:
                link_program(spec, prog)
            except (ELFError, BTFError):
                pass
        for name in spec.variable_specs:
            try:
                spec.variables[name]
            except (ELFError, BTFError, ValueError):
                pass


@st.composite
def mutated(draw) -> bytes:
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 8))):
        start, size = draw(st.sampled_from(RANGES[name]))
        pos = start + draw(st.integers(0, max(0, size - 1)))
        if pos >= len(data):
            continue
        kind = draw(st.sampled_from(["byte", "word", "zero", "ff"]))
        if kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word":
            data[pos:pos + 4] = draw(st.binary(min_size=4, max_size=4))
        elif kind == "zero":
            data[pos:pos + 8] = bytes(8)
        else:
            data[pos:pos + 4] = b"\xff\xff\xff\xff"
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=600, deadline=3000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_objects_raise_only_elf_or_btf_errors(data: bytes):
    _check(data)


@settings(max_examples=200, deadline=3000)
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes):
    _check(b"\x7fELF\x02\x01\x01" + data)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_truncation_point_of_the_headers(name: str):
    data = SEEDS[name]
    for size in range(0, 1024, 7):
        _check(data[:size])


def test_huge_kconfig_extern_is_refused_without_allocating_it() -> None:
    """Corrupt BTF that makes a __kconfig enum 4 GiB raises ELFError instead of zeroing a 4 GiB map value
    (hypothesis found this: the .kconfig map's data was allocated from the extern's BTF size)."""
    import struct

    data = bytearray(SEEDS["obj_kconfig.bpf.o"])
    btf_sec = next(s for s in ELFFile(bytes(data)).sections if s.name == ".BTF")
    hdr_len, type_off, type_len, str_off = struct.unpack_from("<4xIIII", data, btf_sec.offset)
    strings = btf_sec.offset + hdr_len + str_off
    name_off = bytes(data[strings:strings + (1 << 16)]).index(b"\0libbpf_tristate\0") + 1
    enum_header = struct.pack("<III", name_off, (6 << 24) | 3, 4)  # ENUM, 3 values, 4 bytes
    types = btf_sec.offset + hdr_len + type_off
    at = bytes(data[types:types + type_len]).index(enum_header) + types
    struct.pack_into("<I", data, at + 8, 0xFFFF_FFF0)
    with pytest.raises(ELFError, match="CONFIG_BPF_JIT.*bytes"):
        ObjectSpec.from_bytes(bytes(data), source="corrupt.o")
