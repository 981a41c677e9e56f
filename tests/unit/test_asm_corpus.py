"""The committed corpus objects: up to date with their sources, and every program section
decodes and re-encodes byte for byte (no kernel needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from corebpf.asm import decode, disassemble_object, encode

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SOURCES = sorted(CORPUS.glob("*.bpf.c"))
OBJECTS = sorted(CORPUS.glob("*.bpf.o"))
SHF_EXECINSTR = 0x4


def _sections(path: Path) -> dict[str, bytes]:
    """Every section except DWARF (which records the absolute build directory)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections()
                if s.name and "debug" not in s.name and s["sh_type"] != "SHT_NOBITS"}


def _program_sections(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: s.data() for s in elf.iter_sections() if s["sh_flags"] & SHF_EXECINSTR and s["sh_size"]}


def test_every_source_has_its_object():
    assert len(SOURCES) >= 12
    assert [p.name.removesuffix(".c") for p in SOURCES] == [p.name.removesuffix(".o") for p in OBJECTS]


def test_objects_are_up_to_date(tmp_path: Path):
    clang, make = shutil.which("clang"), shutil.which("make")
    if not clang or not make:
        pytest.skip("clang or make is not installed: cannot rebuild the corpus to compare (apt-get install clang make)")
    recorded = (CORPUS / "clang-version.txt").read_text().strip()
    here = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout.splitlines()[0].strip()
    if here != recorded:
        pytest.skip(f"the corpus was built with {recorded!r}, this machine has {here!r}: code would differ")
    res = subprocess.run([make, "-s", "-B", "-C", str(CORPUS), f"OUT={tmp_path}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    stale = []
    for obj in OBJECTS:
        if _sections(obj) != _sections(tmp_path / obj.name):
            stale.append(obj.name)
    assert not stale, f"rebuild the corpus (make -C tests/corpus) and commit: stale objects {stale}"


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_program_sections_round_trip(obj: Path):
    sections = _program_sections(obj)
    assert sections
    for name, data in sections.items():
        insns = decode(data, strict=True)
        assert encode(insns) == data, name
        listing = disassemble_object(insns)
        assert len(listing) == len(insns) and not any("BUG" in line for line in listing)


def test_disassemble_elf_labels_functions_and_shows_relocations():
    from corebpf.asm import disassemble_elf

    out = disassemble_elf(CORPUS / "subprog.bpf.o")
    assert "Disassembly of section tc:" in out and "Disassembly of section .text:" in out
    assert {"subprog_calls:", "global_len:", "clamp:", "mix:"} <= set(out)
    assert "\t\tR_BPF_64_32 global_len" in out
    maps = disassemble_elf(CORPUS / "tracepoint.bpf.o", "tracepoint/syscalls/sys_enter_openat")
    assert maps[:2] == ["Disassembly of section tracepoint/syscalls/sys_enter_openat:", "count_openat:"]
    assert "\t\tR_BPF_64_64 opens" in maps


def test_disassemble_elf_errors(tmp_path: Path):
    from corebpf.asm import disassemble_elf
    from corebpf.errors import ELFError

    with pytest.raises(ELFError):
        disassemble_elf(CORPUS / "xdp.bpf.o", "no_such_section")
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"\x7fELF" + b"\x00" * 60)
    with pytest.raises(ELFError):
        disassemble_elf(junk)
    with pytest.raises(ELFError):
        disassemble_elf(tmp_path / "missing.o")
