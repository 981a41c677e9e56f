"""Bad input gives ELFError (or BTFError) saying what and where: truncated or corrupt ELF, wrong machine,
wrong byte order, missing license (a warning), unknown section, bad relocations."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pytest

from corebpf._sys._generated import ProgType
from corebpf.elf import MissingLicenseWarning, ObjectSpec
from corebpf.elf.reader import ELFFile
from corebpf.errors import BTFError, ELFError

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def raw(name: str) -> bytearray:
    return bytearray((CORPUS / name).read_bytes())


def rename_section(data: bytearray, old: str, new: str) -> bytearray:
    """Rename a section in the section name table (same length)."""
    assert len(old) == len(new)
    elf = ELFFile(bytes(data))
    shstr = elf.sections[struct.unpack_from("<H", data, 62)[0]]
    pos = shstr.data.find(b"\0" + old.encode() + b"\0")
    assert pos >= 0, old
    at = shstr.offset + pos + 1
    data[at:at + len(new)] = new.encode()
    return data


def test_not_elf():
    with pytest.raises(ELFError, match="not an ELF file"):
        ObjectSpec.from_bytes(b"hello world, not an object")


@pytest.mark.parametrize("size", [0, 10, 63, 64, 500, 2000])
def test_truncated(size: int):
    with pytest.raises(ELFError, match="truncated|not an ELF|no section|past the end|out of range"):
        ObjectSpec.from_bytes(bytes(raw("xdp.bpf.o")[:size]))


def test_wrong_machine():
    data = raw("xdp.bpf.o")
    struct.pack_into("<H", data, 18, 62)  # EM_X86_64
    with pytest.raises(ELFError, match="not EM_BPF"):
        ObjectSpec.from_bytes(bytes(data), source="x.o")


def test_wrong_byte_order():
    data = raw("xdp.bpf.o")
    data[5] = 2  # ELFDATA2MSB on a little-endian host
    with pytest.raises(ELFError, match="byte order big-endian.*does not match"):
        ObjectSpec.from_bytes(bytes(data))


def test_32_bit_class():
    data = raw("xdp.bpf.o")
    data[4] = 1
    with pytest.raises(ELFError, match="64-bit"):
        ObjectSpec.from_bytes(bytes(data))


def test_missing_license_warns():
    data = rename_section(raw("xdp.bpf.o"), "license", "licensx")
    with pytest.warns(MissingLicenseWarning, match="GPL-only helpers"):
        spec = ObjectSpec.from_bytes(bytes(data))
    assert spec.license == ""


def test_unknown_section_is_untyped_and_refused_at_load():
    data = rename_section(raw("tc.bpf.o"), "tc", "zz")
    spec = ObjectSpec.from_bytes(bytes(data))
    prog = next(iter(spec.programs.values()))
    assert prog.section == "zz" and prog.type == ProgType.UNSPEC
    from corebpf.loader.programs import check_loadable

    with pytest.raises(ELFError, match="unknown section name 'zz'"):
        check_loadable(prog)
    with pytest.raises(ELFError, match="unknown section name 'zz'"):
        import corebpf

        corebpf.load(bytes(data))  # refused before the kernel is asked for anything
    prog.type = ProgType.SCHED_CLS  # the user may say what it is
    check_loadable(prog)


def _first_code_relocation(data: bytearray) -> tuple[int, int]:
    """(file offset of the relocated instruction, file offset of the Elf64_Rel entry)."""
    elf = ELFFile(bytes(data))
    for sec in elf.sections:
        if sec.type == 9 and elf.sections[sec.info].is_exec and sec.size:
            target = elf.sections[sec.info]
            off = struct.unpack_from("<Q", sec.data, 0)[0]
            return target.offset + off, sec.offset
    raise AssertionError("no code relocation")


def test_relocation_on_a_non_load_instruction():
    data = raw("xdp.bpf.o")
    insn, _ = _first_code_relocation(data)
    data[insn] = 0xB7  # mov64 imm instead of ld_imm64
    with pytest.raises(ELFError, match="neither a call nor a 64-bit load"):
        ObjectSpec.from_bytes(bytes(data))


def test_relocation_outside_the_section():
    data = raw("xdp.bpf.o")
    _, rel = _first_code_relocation(data)
    struct.pack_into("<Q", data, rel, 1 << 20)
    with pytest.raises(ELFError, match="outside the section"):
        ObjectSpec.from_bytes(bytes(data))


def test_relocation_symbol_out_of_range():
    data = raw("xdp.bpf.o")
    _, rel = _first_code_relocation(data)
    struct.pack_into("<Q", data, rel + 8, (5000 << 32) | 1)
    with pytest.raises(ELFError, match="symbol index 5000 out of range"):
        ObjectSpec.from_bytes(bytes(data))


def test_corrupt_btf_is_btf_error():
    data = raw("globals.bpf.o")
    btf = ELFFile(bytes(data)).section(".BTF")
    data[btf.offset:btf.offset + 2] = b"\0\0"  # bad magic
    with pytest.raises(BTFError, match="magic"):
        ObjectSpec.from_bytes(bytes(data))


def test_static_program_is_refused():
    """libbpf refuses static functions in program sections: so do we, naming the function."""
    data = raw("tc.bpf.o")
    elf = ELFFile(bytes(data))
    symtab = next(s for s in elf.sections if s.type == 2)
    sym = next(s for s in elf.symbols if s.name == "tc_mark")
    pos = symtab.offset + sym.index * 24 + 4
    data[pos] = (0 << 4) | (data[pos] & 0xF)  # STB_LOCAL
    with pytest.raises(ELFError, match="'tc_mark' is static"):
        ObjectSpec.from_bytes(bytes(data))


def test_unreadable_file(tmp_path: Path):
    with pytest.raises(ELFError, match="cannot read"):
        ObjectSpec.from_file(tmp_path / "missing.o")


def test_no_warnings_for_good_objects():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for obj in sorted(CORPUS.glob("*.bpf.o")):
            ObjectSpec.from_file(obj)
