"""Verifier-log summarisation on sample logs (captured from Linux 6.18 and older-format variants)."""

from __future__ import annotations

import errno
import pickle

import pytest

from corebpf.errors import VerifierError
from corebpf.programs.verifier_log import LogSummary, summarize

MAP_VALUE_OOB = """\
0: R1=ctx() R10=fp0
0: (62) *(u32 *)(r10 -4) = 0          ; R10=fp0 fp-8=0000????
1: (bf) r2 = r10                      ; R2=fp0 R10=fp0
2: (07) r2 += -4                      ; R2=fp-4
3: (18) r1 = 0xffff888106220800       ; R1=map_ptr(ks=4,vs=8)
5: (85) call bpf_map_lookup_elem#1    ; R0=map_value(ks=4,vs=8)
6: (15) if r0 == 0x0 goto pc+1        ; R0=map_value(ks=4,vs=8)
7: (61) r0 = *(u32 *)(r0 +8)
invalid access to map value, value_size=8 off=8 size=4
R0 min value is outside of the allowed memory range
processed 7 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

UNINIT = """\
0: R1=ctx() R10=fp0
0: (bf) r0 = r2
R2 !read_ok
processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

HELPER_ARG = """\
0: R1=ctx() R10=fp0
0: (b7) r2 = 0                        ; R2=0
1: (18) r1 = 0xffff888106220800       ; R1=map_ptr(ks=4,vs=8)
3: (85) call bpf_map_lookup_elem#1
R2 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_
processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

NO_INSN = """\
unreachable insn 2
processed 0 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

# Older kernels (5.x): state lines "N: R0=..." after instructions, and "verification time" statistics.
OLD_FORMAT_WITH_SOURCE = """\
func#0 @0
0: R1=ctx(id=0,off=0,imm=0) R10=fp0
; int handle(struct __sk_buff *skb)
0: (b7) r1 = 0
1: R1_w=invP0 R10=fp0
; __u32 *v = bpf_map_lookup_elem(&counts, &key);
1: (63) *(u32 *)(r10 -4) = r1
last_idx 1 first_idx 0
regs=2 stack=0 before 0: (b7) r1 = 0
2: R1_w=invP0 R10=fp0 fp-8=mmmm????
; return *v;
5: (61) r0 = *(u32 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
verification time 42 usec
stack depth 8
processed 6 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

STATE_AFTER_REASON = """\
0: R1=ctx() R10=fp0
0: (85) call bpf_probe_write_user#36
helper call is not allowed in probe
2: R0=scalar()
"""

LIBBPF_STYLE_TRAILER = """\
0: (b7) r0 = 0
1: (95) exit
At program exit the register R0 has unknown scalar value should have been in [0, 1]
-- END PROG LOAD LOG --
"""


def test_map_value_out_of_bounds_keeps_two_lines_and_the_insn():
    s = summarize(MAP_VALUE_OOB)
    assert s.reason == ("invalid access to map value, value_size=8 off=8 size=4; "
                        "R0 min value is outside of the allowed memory range")
    assert s.insn_index == 7 and s.insn == "(61) r0 = *(u32 *)(r0 +8)"
    assert str(s) == f"{s.reason} (at insn 7: (61) r0 = *(u32 *)(r0 +8))"


def test_uninitialised_register():
    s = summarize(UNINIT)
    assert (s.reason, s.insn_index, s.insn) == ("R2 !read_ok", 0, "(bf) r0 = r2")


def test_helper_argument_mismatch():
    s = summarize(HELPER_ARG)
    assert s.reason.startswith("R2 type=scalar expected=fp") and s.insn_index == 3
    assert s.insn == "(85) call bpf_map_lookup_elem#1"


def test_log_without_instructions():
    s = summarize(NO_INSN)
    assert s == LogSummary(reason="unreachable insn 2")
    assert str(s) == "unreachable insn 2"


def test_old_format_with_source_lines_and_statistics():
    s = summarize(OLD_FORMAT_WITH_SOURCE)
    assert s.reason == "R0 invalid mem access 'map_value_or_null'"
    assert s.insn_index == 5 and s.source == "return *v;"
    assert "source: return *v;" in str(s)


def test_state_line_after_the_reason_is_skipped():
    s = summarize(STATE_AFTER_REASON)
    assert s.reason == "helper call is not allowed in probe" and s.insn_index == 0


def test_trailer_and_exit_code_reason():
    s = summarize(LIBBPF_STYLE_TRAILER)
    assert s.reason.startswith("At program exit the register R0") and s.insn_index == 1


def test_only_the_last_lines_of_a_long_reason():
    log = "0: (95) exit\n" + "\n".join(f"reason line {i}" for i in range(5)) + "\n"
    assert summarize(log).reason == "reason line 3; reason line 4"
    assert summarize(log, max_reason_lines=1).reason == "reason line 4"


@pytest.mark.parametrize("log", ["", "\n\n", "processed 0 insns\n", "\x00\x00"])
def test_empty_or_statistics_only(log: str):
    s = summarize(log)
    assert s.reason == "" and s.insn_index is None
    assert str(s) == "the verifier gave no reason"


def test_verifier_error_str_and_log():
    s = summarize(UNINIT)
    err = VerifierError(errno.EACCES, "BPF_PROG_LOAD", str(s), UNINIT)
    assert "R2 !read_ok (at insn 0: (bf) r0 = r2)" in str(err)
    assert "processed 1 insns" not in str(err) and err.log == UNINIT
    again = pickle.loads(pickle.dumps(err))
    assert again.log == UNINIT and str(again) == str(err)
