"""corebpf.Program on the real kernel: load, test_run, ids/tags/pins, stats, verifier errors."""

from __future__ import annotations

import errno

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

import corebpf
from corebpf import AttachType, Map, Program, ProgType, TestRunResult, VerifierError
from corebpf._sys.hints import lockdown_mode
from corebpf.errors import BPFError, BPFNotFoundError, BPFPermissionError
from corebpf.programs import ProgramInfo, enable_stats

from kernel_rules import older_than
from test_programs_insns import (
    PACKET, R0, R1, R2, R10, exit_, insn, ld_map_fd, ldx_dw, ldx_w, mov_imm, mov_reg, read_u32_from_map, ret,
    tail_call, add_imm, call, jeq_imm, st_w, HELPER_MAP_LOOKUP_ELEM,
)

XDP_PASS = 2


def test_public_names():
    assert corebpf.Program is Program and corebpf.ProgType is ProgType and corebpf.AttachType is AttachType
    assert corebpf.TestRunResult is TestRunResult


@pytest.mark.parametrize("ptype", ["socket_filter", ProgType.XDP, int(ProgType.SCHED_CLS)])
def test_constant_program_test_run(ptype: object) -> None:
    with Program.load(ret(42), ptype, name="const42") as p:
        res = p.test_run(PACKET, repeat=5)
        assert isinstance(res, TestRunResult)
        assert res.return_value == 42
        assert res.duration_ns >= 0
        assert len(res.data_out) == len(PACKET)


def test_xdp_pass_returns_packet_unchanged():
    with Program.load(ret(XDP_PASS), "xdp") as p:
        res = p.test_run(PACKET)
        assert res.return_value == XDP_PASS and res.data_out == PACKET


def _kernel_sk_buff_size() -> int:
    from corebpf.btf import BTF
    from corebpf.btf.types import Kind

    return BTF.vmlinux().find("__sk_buff", Kind.STRUCT).size


_SK_BUFF_SIZE = _kernel_sk_buff_size()


def test_test_run_with_context_in_and_out():
    skb = bytearray(192)  # struct __sk_buff; test runs accept mark, priority, cb[]... from user space
    struct.pack_into("=I", skb, 8, 77)  # mark
    with Program.load(ldx_w(R0, R1, 8) + exit_(), "sched_cls") as p:
        res = p.test_run(PACKET, ctx=skb)
        assert res.return_value == 77
        # The kernel copies back its own struct __sk_buff: 192 bytes since hwtstamp (5.16), 184 on 5.10.
        assert res.ctx_out is not None and len(res.ctx_out) == _SK_BUFF_SIZE
        assert struct.unpack_from("=I", res.ctx_out, 8) == (77,)


def test_program_reads_a_map_value():
    with Map.create("hash", 4, 4, 4) as m:
        with Program.load(read_u32_from_map(m.fileno(), key=0), "socket_filter", name="reader") as p:
            assert p.test_run(PACKET).return_value == 0xFFFF  # no element yet
            m[0] = struct.pack("=I", 1234)
            assert p.test_run(PACKET).return_value == 1234
            m[0] = struct.pack("=I", 77)
            assert p.test_run(PACKET).return_value == 77
            assert p.info.map_ids == (m.id,)


def test_program_built_with_corebpf_asm():
    asm = pytest.importorskip("corebpf.asm")
    b = asm.builder
    insns = [b.mov64(b.R0, 5), b.jeq(b.R0, 5, "done"), b.mov64(b.R0, 9), b.label("done"), b.exit_()]
    with Program.load(insns, "socket_filter") as p:
        assert p.test_run(PACKET).return_value == 5


def test_tail_call_through_prog_array():
    with Map.create("prog_array", 4, 4, 2) as jmp, Program.load(ret(42), "socket_filter") as target, \
            Program.load(tail_call(jmp.fileno(), 0, fallthrough=1), "socket_filter") as caller:
        assert caller.test_run(PACKET).return_value == 1  # empty slot: the tail call falls through
        jmp[0] = target
        assert jmp[0] == target.id
        assert caller.test_run(PACKET).return_value == 42
        del jmp[0]
        assert caller.test_run(PACKET).return_value == 1


def test_identity_tag_info():
    with Program.load(ret(0), "socket_filter", name="ident_test") as p:
        assert p.name == "ident_test" and p.type == ProgType.SOCKET_FILTER
        assert len(p.tag) == 16 and int(p.tag, 16) >= 0
        info = p.info
        assert isinstance(info, ProgramInfo)
        assert (info.id, info.name, info.type, info.tag) == (p.id, "ident_test", ProgType.SOCKET_FILTER, p.tag)
        assert info.xlated_prog_len == 16 and info.gpl_compatible
        if older_than("features", "prog_info_verified_insns"):
            assert info.verified_insns == 0  # the kernel has no such field: nothing filled it
        else:
            assert info.verified_insns >= 2
        assert "socket_filter" in repr(p)


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_tag_matches_bpftool():
    with Program.load(read_u32_from_map(0, 0)[:0] + ret(3), "socket_filter") as p:
        out = subprocess.run(["bpftool", "-j", "prog", "show", "id", str(p.id)], capture_output=True, text=True,
                             check=True).stdout
        shown = json.loads(out)
        assert shown["tag"] == p.tag and shown["id"] == p.id


def test_same_code_same_tag():
    with Program.load(ret(3), "xdp") as a, Program.load(ret(3), "socket_filter") as b, \
            Program.load(ret(4), "xdp") as c:
        assert a.tag == b.tag != c.tag


def test_run_stats():
    with Program.load(ret(1), "socket_filter") as p:
        before = p.stats()
        with enable_stats():
            p.test_run(PACKET, repeat=50)
        after = p.stats()
        assert after.run_cnt - before.run_cnt == 50
        assert after.run_time_ns > before.run_time_ns
        assert p.run_cnt == after.run_cnt and p.run_time_ns == after.run_time_ns


def test_from_id_from_fd_pin(bpffs: str):
    path = os.path.join(bpffs, "pinned_prog")
    with Program.load(ret(9), "socket_filter", name="pinme") as p:
        with Program.from_id(p.id) as again:
            assert again.tag == p.tag and again.test_run(PACKET).return_value == 9
        with Program.from_fd(p.fileno()) as dup:
            assert dup.id == p.id and not p.closed
        p.pin(path)
        prog_id = p.id
    try:
        with Program.from_pin(path) as pinned:
            assert pinned.id == prog_id and pinned.name == "pinme"
    finally:
        os.unlink(path)
    with pytest.raises(BPFNotFoundError):
        Program.from_id(0xFFFFFFF0)
    with Map.create("hash", 4, 4, 1) as m, pytest.raises(ValueError, match="not a BPF program"):
        Program.from_fd(m.fileno())


def test_explicit_log_level_keeps_the_log():
    with Program.load(ret(0), "socket_filter", log_level=2) as p:
        assert "processed 2 insns" in p.verifier_log


def test_successful_load_with_a_tiny_log_buffer_grows_it():
    code = b"".join(mov_imm(R0, i) for i in range(200)) + exit_()
    with Program.load(code, "socket_filter", log_level=2, log_size=128) as p:
        assert p.verifier_log.startswith("func#0") or p.verifier_log.startswith("0:")
        assert "199: (b7) r0 = 199" in p.verifier_log and "processed 201 insns" in p.verifier_log


# ---- verifier errors ----------------------------------------------------------------------------

def test_uninitialised_register():
    code = ret(0)[:0] + mov_reg(R0, R2) + exit_()
    with pytest.raises(VerifierError) as exc:
        Program.load(code, "socket_filter")
    err = exc.value
    assert "R2 !read_ok" in str(err) and "insn 0" in str(err) and "r0 = r2" in str(err)
    assert "processed" in err.log and err.errno == 13  # EACCES
    assert isinstance(err, BPFError)


def test_out_of_bounds_stack_read():
    code = mov_imm(R0, 0) + ldx_dw(R0, R10, 8) + exit_()
    with pytest.raises(VerifierError) as exc:
        Program.load(code, "socket_filter")
    assert "invalid read from stack" in str(exc.value) and "insn 1" in str(exc.value)


def test_out_of_bounds_map_value_names_the_instruction():
    with Map.create("array", 4, 8, 1) as m:
        code = b"".join([st_w(R10, -4, 0), mov_reg(R2, R10), add_imm(R2, -4), ld_map_fd(R1, m.fileno()),
                         call(HELPER_MAP_LOOKUP_ELEM), jeq_imm(R0, 0, 1), ldx_w(R0, R0, 8), exit_()])
        with pytest.raises(VerifierError) as exc:
            Program.load(code, "socket_filter", name="oob")
    text = str(exc.value)
    assert "invalid access to map value" in text and "insn 7" in text and "oob" in text


def test_log_grows_from_a_tiny_buffer():
    # A long straight-line program so the log is much larger than the first buffer.
    code = b"".join(mov_imm(R0, i) for i in range(300)) + mov_reg(R0, R2) + exit_()
    with pytest.raises(VerifierError) as exc:
        Program.load(code, "socket_filter", log_size=128)
    assert "R2 !read_ok" in str(exc.value) and "insn 300" in str(exc.value)
    assert exc.value.log.startswith("0: R1=ctx") or "0: (b7) r0 = 0" in exc.value.log
    assert "(log truncated)" not in str(exc.value)


def test_unknown_helper_is_a_verifier_error():
    with pytest.raises(VerifierError) as exc:
        Program.load(call(99999) + exit_(), "socket_filter")
    assert exc.value.errno == 22 and "func" in str(exc.value)


def test_missing_exit():
    with pytest.raises(VerifierError, match="exit"):
        Program.load(mov_imm(R0, 0), "socket_filter")


def test_refused_fentry_explains_itself():
    from corebpf import features

    probe = features.attach_method("fentry")
    if probe.supported or probe.errno != errno.EPERM:
        pytest.skip(f"fentry is not refused with EPERM on this kernel ({probe.reason})")
    with pytest.raises(BPFPermissionError) as exc:
        Program.load(ret(0), "tracing", expected_attach_type="trace_fentry", attach_btf_id=1)
    hint = exc.value.hint
    assert "trampolines" in hint and "kernel policy" in hint and "tp_btf" in hint
    mode = lockdown_mode()
    if mode not in (None, "none"):
        assert f"lockdown '{mode}'" in hint


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one instruction"):
        Program.load(b"", "xdp")
    with pytest.raises(ValueError, match="multiple of 8"):
        Program.load(b"\0" * 12, "xdp")
    with pytest.raises(ValueError, match="unknown program type"):
        Program.load(ret(0), "xdpp")


def test_test_run_input_errors_have_hints():
    # skb programs need at least an Ethernet header: refused (EINVAL) by every kernel with test runs.
    # (An empty XDP packet is no such case: 5.10 runs XDP on it, newer kernels refuse it.)
    with Program.load(ret(0), "sched_cls") as p, pytest.raises(BPFError) as exc:
        p.test_run(b"")
    assert exc.value.errno == errno.EINVAL and exc.value.hint and "14 bytes" in exc.value.hint


def test_context_manager_closes():
    p = Program.load(ret(0), "socket_filter")
    with p:
        pass
    assert p.closed
    with pytest.raises(ValueError):
        p.test_run(PACKET)


def test_insn_helper_encodes_as_documented():
    assert insn(0x95) == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])
    assert mov_imm(R0, -1) == bytes([0xB7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])


_NO_CAPS_SCRIPT = """
import corebpf, struct
code = struct.pack('<BBhi', 0xb7, 0, 0, 0) + struct.pack('<BBhi', 0x95, 0, 0, 0)
for kind in ('raw_tracepoint', 'socket_filter'):
    try:
        corebpf.Program.load(code, kind)
        print(kind, 'loaded')
    except corebpf.BPFPermissionError as e:
        print(kind, e.hint)
try:
    corebpf.Map.create('hash', 4, 4, 1)
    print('map created')
except corebpf.BPFPermissionError as e:
    print('map', e.hint)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_without_capabilities_the_hint_names_the_missing_one():
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        if f.read().strip() == "0":
            pytest.skip("unprivileged bpf() is allowed here, so nothing is refused for lack of capabilities")
    cmd = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all",
           "--bounding-set=-all", sys.executable, "-c", _NO_CAPS_SCRIPT]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    assert "CAP_BPF" in lines["raw_tracepoint"] and "CAP_PERFMON" in lines["raw_tracepoint"]
    assert "CAP_BPF" in lines["socket_filter"] and "CAP_PERFMON" not in lines["socket_filter"].split(" (")[0]
    assert "CAP_BPF" in lines["map"]
