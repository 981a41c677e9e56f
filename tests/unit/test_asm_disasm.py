"""corebpf.asm disassembler: the kernel printer's syntax in both dialects, bpftool's listing rules
(numbering, call naming through kallsyms, func headers, line info lookup), and the private BTF."""

from __future__ import annotations

from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from corebpf.asm import (
    Dialect, FuncInfo, Instruction, KernelSymbols, LineInfo, PseudoSrc, Size, disassemble, disassemble_object,
    encode, format_insn, helper_name,
)
from corebpf.asm import builder as b
from corebpf.asm.btf_source import ProgramBTF
from corebpf.errors import BTFError

CORPUS = Path(__file__).resolve().parent.parent / "corpus"

CASES = [
    # (instruction, current dialect, legacy dialect or None when the same)
    (b.mov64(b.R1, -8), "(b7) r1 = -8", None),
    (b.add32(b.R2, b.R3), "(0c) w2 += w3", None),
    (b.neg64(b.R4), "(87) r4 = -r4", None),
    (b.sdiv64(b.R1, b.R2), "(3f) r1 s/= r2", "(3f) r1 /= r2"),
    (b.smod32(b.R1, 5), "(94) w1 s%= 5", "(94) w1 %= 5"),
    (b.movsx64(b.R1, b.R2, 32), "(bf) r1 = (s32)r2", "(bf) r1 = r2"),
    (b.to_be(b.R3, 16), "(dc) r3 = be16 r3", None),
    (b.to_le(b.R3, 64), "(d4) r3 = le64 r3", None),
    (b.bswap(b.R3, 64), "(d7) r3 = bswap64 r3", "BUG_alu64_d7"),
    (Instruction(0xBF, dst=0, src=0, off=-1), "(bf) r0 = &(void __percpu *)(r0)", "(bf) r0 = r0"),
    (b.addr_space_cast(b.R1, b.R2, 1, 0), "(bf) r1 = addr_space_cast(r2, 1, 0)", "(bf) r1 = r2"),
    (b.ldx(Size.DW, b.R0, b.R1, 8), "(79) r0 = *(u64 *)(r1 +8)", None),
    (b.ldxsx(Size.B, b.R0, b.R1, -1), "(91) r0 = *(s8 *)(r1 -1)", "BUG_ldx_91"),
    (b.st(Size.W, b.R10, -4, 7), "(62) *(u32 *)(r10 -4) = 7", None),
    (b.stx(Size.H, b.R10, -2, b.R1), "(6b) *(u16 *)(r10 -2) = r1", None),
    (b.atomic_add(Size.DW, b.R1, 0, b.R2), "(db) lock *(u64 *)(r1 +0) += r2", None),
    (b.atomic_fetch_xor(Size.W, b.R1, 4, b.R2), "(c3) r2 = atomic_fetch_xor((u32 *)(r1 +4), r2)", None),
    (b.atomic_cmpxchg(Size.DW, b.R1, 0, b.R2), "(db) r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)", None),
    (b.atomic_xchg(Size.DW, b.R1, 0, b.R2), "(db) r2 = atomic64_xchg((u64 *)(r1 +0), r2)", None),
    (b.load_acquire(Size.DW, b.R0, b.R1, 0), "(db) r0 = load_acquire((u64 *)(r1 +0))", "BUG_db"),
    (b.store_release(Size.W, b.R1, 0, b.R2), "(c3) store_release((u32 *)(r1 +0), r2)", "BUG_c3"),
    (b.ld_abs(Size.H, 12), "(28) r0 = *(u16 *)skb[12]", None),
    (b.ld_ind(Size.B, b.R7, 14), "(50) r0 = *(u8 *)skb[r7 + 14]", None),
    (b.ld_imm64(b.R1, 0xDEADBEEF00000001), "(18) r1 = 0xdeadbeef00000001", None),
    (b.jeq(b.R1, -1, 3), "(15) if r1 == 0xffffffff goto pc+3", None),
    (b.jslt32(b.R1, b.R2, -4), "(ce) if w1 s< w2 goto pc-4", None),
    (b.ja(0), "(05) goto pc+0", None),
    (b.gotol(70000), "(06) gotol pc+70000", "(06) if w0 jmp 0x11170 goto pc+0"),
    (b.may_goto(2), "(e5) may_goto pc+2", "(e5) if r0 (null) 0x0 goto pc+2"),
    (b.call("trace_printk"), "(85) call bpf_trace_printk#6", None),
    (b.call(100000), "(85) call unknown#100000", None),
    (b.call_pseudo(-7), "(85) call pc-7", None),
    (b.call_kfunc(4242), "(85) call kernel-function#4242", None),
    (b.exit_(), "(95) exit", None),
    (Instruction(0xC2, dst=0), "(c2) nospec", None),
    (Instruction(0xE7, dst=1, imm=1), "(e7) r1 (null) 1", None),
    (Instruction(0x96), "(96) if w0 exit 0x0 goto pc+0", None),
    (Instruction(0x00 | 0x60 | 0x08), "BUG_ld_68", None),
]


@pytest.mark.parametrize("insn, current, legacy", CASES, ids=lambda x: x if isinstance(x, str) else None)
def test_kernel_printer_syntax(insn, current, legacy):
    assert format_insn(insn) == current
    assert format_insn(insn, dialect=Dialect.LEGACY) == (legacy or current)


def test_dialect_for_bpftool_versions():
    assert Dialect.for_bpftool("7.1.0") == Dialect.LEGACY
    assert Dialect.for_bpftool("v7.2.0") == Dialect.LEGACY
    assert Dialect.for_bpftool("7.7.0") == Dialect.CURRENT and Dialect.for_bpftool("junk") == Dialect.CURRENT
    v73 = Dialect.for_bpftool("7.3.0")
    assert v73.isa_v4 and not v73.arena_may_goto and not v73.percpu_mov
    assert format_insn(b.may_goto(1), dialect=v73) == "(e5) if r0 (null) 0x0 goto pc+1"
    assert format_insn(b.gotol(1), dialect=v73) == "(06) gotol pc+1"
    assert format_insn(b.load_acquire(Size.W, b.R0, b.R1), dialect=Dialect.for_bpftool("7.5.1")) == "BUG_c3"


def test_helper_names_come_from_the_generated_enum():
    assert helper_name(1) == "bpf_map_lookup_elem" and helper_name(0) == "bpf_unspec"
    assert helper_name(12) == "bpf_tail_call" and helper_name(10**6) is None


def test_listing_numbers_slots_and_skips_second_half():
    prog = [b.ld_imm64(b.R1, 5), b.mov64(b.R0, 0), b.exit_()]
    assert disassemble(prog, xlated=False) == ["   0: (18) r1 = 0x5", "   2: (b7) r0 = 0", "   3: (95) exit"]
    assert disassemble(encode(prog), xlated=False) == disassemble(prog, xlated=False)
    wide = disassemble([b.mov64(b.R0, 0)] * 1001, xlated=False)
    assert wide[1000] == "1000: (b7) r0 = 0"
    assert disassemble([b.mov64(b.R0, 0)] * 1001, xlated=False, dialect=Dialect.LEGACY)[1000] == " 1000: (b7) r0 = 0"


def test_opcodes_lines():
    lines = disassemble([b.ld_imm64(b.R1, 0x100000002), b.exit_()], xlated=False, opcodes=True)
    assert lines == ["   0: (18) r1 = 0x100000002", "       18 01 00 00 02 00 00 00 00 00 00 00 01 00 00 00",
                     "   2: (95) exit", "       95 00 00 00 00 00 00 00"]


def test_xlated_operands_and_calls():
    syms = KernelSymbols.from_lines([
        "ffffffff81000000 T _text",
        "ffffffff81001000 T __bpf_call_base",
        "ffffffff81001100 T htab_map_lookup_elem",
        "ffffffffa0000000 t bpf_prog_0123456789abcdef_sub\t[bpf]",
    ])
    prog = [
        b.ld_map_fd(b.R1, 17),
        b.ld_map_value(b.R2, 17, 24),
        b.ld_map_idx_value(b.R3, 2, 8),
        Instruction(0x18, dst=4, src=PseudoSrc.FUNC, imm=5),
        Instruction(0x85, imm=0x100),                   # rewritten helper: __bpf_call_base + 0x100
        Instruction(0x85, imm=0x7777),                  # unknown address
        Instruction(0x85, imm=1),                       # still a helper id
        Instruction(0x85, src=1, off=3, imm=0),         # subprogram index 0, relative offset 3
        b.exit_(),
    ]
    jited = disassemble(prog, kallsyms=syms, jited_ksyms=[0xFFFFFFFFA0000000])
    assert [line.split(": ", 1)[1] for line in jited] == [
        "(18) r1 = map[id:17]",
        "(18) r2 = map[id:17][0]+24",
        "(18) r3 = map[idx:2]+8",
        "(18) r4 = subprog[+5]",
        "(85) call htab_map_lookup_elem#256",
        "(85) call 0xffffffff81008777#30583",
        "(85) call bpf_map_lookup_elem#1",
        "(85) call pc+3#bpf_prog_0123456789abcdef_sub",
        "(95) exit",
    ]
    interpreted = disassemble(prog, kallsyms=syms)
    assert interpreted[7].endswith("(85) call pc+3")
    unknown_jit = disassemble(prog, kallsyms=syms, jited_ksyms=[0xFFFFFFFFA0001000])
    assert unknown_jit[7].endswith("(85) call pc+3#0xffffffffa0001000")


def test_kallsyms_duplicates_follow_bsearch_and_restricted_pointers_drop_all():
    lines = [f"ffffffff8100{i:04x} T sym{i}" for i in range(7)] + ["ffffffff81000003 T alias3"]
    syms = KernelSymbols.from_lines(lines)
    # sorted stably: ..., sym3, alias3, ... ; bsearch over 8 entries probes index 4 first (alias3)
    assert syms.lookup(0xFFFFFFFF81000003) == "alias3"
    assert syms.lookup(0xFFFFFFFF81000005) == "sym5" and syms.lookup(0x1234) is None
    hidden = KernelSymbols.from_lines(["0000000000000000 T __bpf_call_base", "0000000000000000 T x"])
    assert hidden.call_base == 0 and hidden.lookup(0) is None


class FakeBTF:
    def __init__(self, strings: dict[int, str], sigs: dict[int, str]) -> None:
        self.strings, self.sigs = strings, sigs

    def string(self, offset: int):
        return self.strings.get(offset)

    def func_signature(self, type_id: int) -> str:
        return self.sigs.get(type_id, "")


def test_func_headers_and_line_lookup_follow_bpftool():
    btf = FakeBTF({1: "f.c", 10: "\t  int a = 1;", 20: "return a;", 30: "x();"}, {5: "int main(void * ctx)", 6: ""})
    prog = [b.mov64(b.R0, 1), b.ld_imm64(b.R1, 0), b.mov64(b.R0, 0), b.exit_(), b.exit_()]
    lines = [LineInfo(0, 1, 10, (3 << 10) | 2), LineInfo(0, 1, 30, 4 << 10), LineInfo(3, 1, 20, 5 << 10)]
    out = disassemble(prog, xlated=False, btf=btf, func_info=[FuncInfo(0, 5), FuncInfo(4, 6)], line_info=lines)
    # two records at slot 0: libbpf's lookup returns the last one, and (advancing one record per
    # hit) returns it again at the next instruction
    assert out == [
        "int main(void * ctx):",
        "; x();", "   0: (b7) r0 = 1",
        "; x();", "   1: (18) r1 = 0x0",
        "; return a;", "   3: (b7) r0 = 0",
        "   4: (95) exit",                 # FuncInfo(4, 6) renders as "": no header
        "   5: (95) exit",
    ]
    with_linum = disassemble(prog[:1], xlated=False, btf=btf, line_info=lines[:1], linum=True)
    assert with_linum[0] == "; int a = 1; [file:f.c line_num:3 line_col:2]"
    # without BTF nothing but instructions
    assert len(disassemble(prog, xlated=False, func_info=[FuncInfo(0, 5)], line_info=lines)) == 5


def test_disassemble_object_labels():
    out = disassemble_object([b.mov64(b.R0, 0), b.exit_()], symbols={0: "prog", 1: "tail"})
    assert out == ["prog:", "   0: (b7) r0 = 0", "tail:", "   1: (95) exit"]


def _btf_section(obj: Path) -> bytes:
    with open(obj, "rb") as f:
        return ELFFile(f).get_section_by_name(".BTF").data()


def test_program_btf_signatures_from_corpus_objects():
    btf = ProgramBTF.from_bytes(_btf_section(CORPUS / "subprog.bpf.o"))
    sigs = {btf.func_signature(i) for i in range(1, 200) if _is_func(btf, i)}
    assert "int subprog_calls(struct __sk_buff * skb)" in sigs
    assert "__u64 mix(__u64 a, __u64 b)" in sigs
    assert "int clamp(int v, int lo, int hi)" in sigs
    xdp = ProgramBTF.from_bytes(_btf_section(CORPUS / "xdp.bpf.o"))
    assert any(xdp.func_signature(i) == "int xdp_count(struct xdp_md * ctx)" for i in range(1, 100)
               if _is_func(xdp, i))
    assert btf.string(0) == "" and btf.string(10**9) is None


def _is_func(btf: ProgramBTF, type_id: int) -> bool:
    return type_id in btf.btf and btf.btf.kind_of(type_id) == 12


def test_program_btf_renders_like_bpftool():
    from corebpf.btf.builder import BTFBuilder

    bld = BTFBuilder()
    i32 = bld.add_int("int", 4, signed=True)
    chr_ = bld.add_int("char", 1)
    cptr = bld.add_ptr(bld.add_const(chr_))
    arr = bld.add_array(chr_, i32, 16)
    fwd = bld.add_fwd("sock")
    proto = bld.add_func_proto(i32, [("fmt", cptr), ("", bld.add_ptr(fwd)), ("", 0)])
    func = bld.add_func("printk_like", proto)
    sig = ProgramBTF.from_bytes(bld.encode())
    assert sig.func_signature(func) == "int printk_like(const char * fmt, struct sock *, ...)"
    assert sig.func_signature(proto) == "int (const char * fmt, struct sock *, ...)"
    assert sig.func_signature(arr) == "char [16]"
    long_name = bld.add_func("f" * 1100, proto)
    assert ProgramBTF.from_bytes(bld.encode()).func_signature(long_name) == ""


@pytest.mark.parametrize("blob", [b"", b"\x9f\xeb\x01\x00", b"\x00" * 24])
def test_program_btf_rejects_garbage(blob):
    with pytest.raises(BTFError):
        ProgramBTF.from_bytes(blob)


def test_listing_accepts_a_corebpf_btf_directly():
    from corebpf.btf import BTF

    btf = BTF.from_bytes(_btf_section(CORPUS / "xdp.bpf.o"))
    func_id = next(t.id for t in btf if t.kind == 12 and t.name == "xdp_count")
    out = disassemble([b.exit_()], xlated=False, btf=btf, func_info=[FuncInfo(0, func_id)])
    assert out == ["int xdp_count(struct xdp_md * ctx):", "   0: (95) exit"]
