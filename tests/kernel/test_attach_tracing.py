"""Tracing attach acceptance: each program runs (a counter in a map moves) and stops when its link closes."""

from __future__ import annotations

import os
import time

import pytest

import corebpf
from corebpf import features, links
from corebpf.analysis.kernel_versions import KernelVersion
from corebpf.links.tracing import load as load_tracing
from kernel_rules import missing_is_expected
from test_links_util import count, counting_insns, counting_program, open_fds


def _spin(seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        pass


def _stops_after_close(m: corebpf.Map, trigger) -> None:
    # other CPUs may still be inside the program for an RCU grace period after the detach returned (and
    # programs on sys_enter also count other processes' syscalls): let that pass before the baseline
    time.sleep(0.05)
    before = count(m)
    trigger()
    assert count(m) == before, "the program still ran after its link was closed"


def getpgids(n: int = 20) -> None:
    for _ in range(n):
        os.getpgid(0)


def test_tracepoint_sys_enter_getpgid_counts_and_stops():
    with counting_program("tracepoint") as (p, m):
        with links.tracepoint(p, "syscalls", "sys_enter_getpgid") as link:
            assert link.method in ("perf_event+bpf_link", "perf_event+ioctl")
            getpgids(25)
            assert count(m) >= 25
        _stops_after_close(m, getpgids)


def test_tracepoint_one_string_form_and_ioctl_plan_b():
    with counting_program("tracepoint") as (p, m):
        from corebpf.links._tracefs import event_id
        from corebpf.links.perf_event import attach_perf_event, open_perf_event
        from corebpf._sys import _generated as g

        attr = g.PerfEventAttr(type=g.PerfType.TRACEPOINT, config=event_id("syscalls", "sys_enter_getpgid"))
        attr.sample_period = 1
        with attach_perf_event(p, open_perf_event(attr), "tp via ioctl", force_ioctl=True) as link:
            assert link.method == "perf_event+ioctl" and link.fd is None
            getpgids(10)
            assert count(m) >= 10
        _stops_after_close(m, getpgids)
        with links.tracepoint(p, "syscalls/sys_enter_getpgid"):
            getpgids(3)


def test_raw_tracepoint_counts_and_stops():
    with counting_program("raw_tracepoint") as (p, m):
        with links.raw_tracepoint(p, "sys_enter") as link:
            assert link.method == "bpf_link" and link.id > 0
            getpgids(10)
            assert count(m) >= 10
        _stops_after_close(m, getpgids)


def test_tp_btf_counts_and_stops():
    if not features.attach_method("tp_btf").supported:
        pytest.fail(f"tp_btf must work on Linux 6.18: {features.attach_method('tp_btf').reason}")
    with corebpf.Map.create("array", 4, 8, 1) as m:
        with load_tracing(counting_insns(m.fileno()), "tp_btf", "sys_enter", name="cnt") as p:
            with links.tp_btf(p) as link:
                getpgids(10)
                assert count(m) >= 10
                assert link.method == "bpf_link"
            _stops_after_close(m, getpgids)


def test_perf_event_cpu_clock_sampling_counts_and_stops():
    with counting_program("perf_event") as (p, m):
        with links.perf_event(p, "cpu-clock", sample_freq=2000) as link:
            assert len(link.links) == len(links.perf_event.__globals__["online_cpus"]())
            _spin(0.2)
            assert count(m) > 50
        time.sleep(0.01)
        _stops_after_close(m, lambda: _spin(0.1))


def test_perf_event_unknown_event_lists_close_names():
    with counting_program("perf_event") as (p, _):
        with pytest.raises(links.TargetNotFoundError, match="cpu-clock"):
            links.perf_event(p, "cpu-clok")


def _task_iter_insns(m: corebpf.Map) -> list:
    from corebpf.asm.builder import (R0, R1, R2, R3, R6, R10, add64, assemble, atomic_add, call, exit_, jeq, label,
                                     ld_imm64, ld_map_value, ldx, mov64, stx)
    from corebpf.asm.opcodes import Size

    return assemble([
        mov64(R6, R1),
        ldx(Size.DW, R3, R6, 8), jeq(R3, 0, "out"),          # ctx->task == NULL: the final call
        ld_map_value(R1, m.fileno(), 0), mov64(R2, 1), atomic_add(Size.DW, R1, 0, R2),
        ld_imm64(R2, int.from_bytes(b"corebpf\n", "little")), stx(Size.DW, R10, -8, R2),
        ldx(Size.DW, R1, R6, 0), ldx(Size.DW, R1, R1, 0),      # ctx->meta->seq
        mov64(R2, R10), add64(R2, -8), mov64(R3, 8),
        call("seq_write"),
        label("out"), mov64(R0, 0), exit_(),
    ])


def test_iterator_reads_output_and_counts():
    with corebpf.Map.create("array", 4, 8, 1) as m:
        with load_tracing(_task_iter_insns(m), "iter", "task", name="it") as p:
            with links.iterator(p) as it:
                out = it.read()
                tasks = out.count(b"corebpf\n")
                assert tasks >= 2 and out == b"corebpf\n" * tasks  # at least us and init
                assert count(m) == tasks
                assert list(it.lines())[0] == "corebpf"
            with pytest.raises(links.LinkError):
                it.read()


def test_fentry_and_lsm_refused_here_explain_and_fall_back():
    probe = features.attach_method("fentry")
    with corebpf.Map.create("array", 4, 8, 1) as m:
        insns = counting_insns(m.fileno())
        with counting_program("tracepoint") as (tp_prog, tp_map):
            link = links.fallback("getpgid entry", [
                ("fentry", lambda: load_tracing(insns, "fentry", "__x64_sys_getpgid"), {}),
                ("kprobe", tp_prog, {"function": "__x64_sys_getpgid"}),
                ("tracepoint", tp_prog, {"tracepoint": "syscalls/sys_enter_getpgid"}),
            ])
            with link:
                getpgids(5)
                if probe.supported:  # another kernel (VM matrix): fentry itself must have worked
                    assert link.method.startswith("fentry:")
                    assert count(m) >= 5
                    link.close()
                    _stops_after_close(m, getpgids)
                else:
                    assert link.method.startswith("tracepoint:")
                    assert count(tp_map) >= 5
                    tried = {a.method: a for a in link.attempts}
                    assert not tried["fentry"].ok and "EPERM" in tried["fentry"].reason
                    assert not tried["kprobe"].ok
                    assert tried["tracepoint"].ok
            _stops_after_close(tp_map, getpgids)


def test_lsm_load_error_names_lockdown():
    if features.attach_method("lsm").supported:
        pytest.skip("LSM programs load here (the refusal path is tested on lockdown kernels)")
    with corebpf.Map.create("array", 4, 8, 1) as m:
        with pytest.raises(corebpf.BPFError) as ei:
            load_tracing(counting_insns(m.fileno()), "lsm", "file_open")
        assert ei.value.errno in (1, 13)
        assert "lockdown" in str(ei.value) or "lsm" in str(ei.value).lower()


def _kprobes_for_real(p: corebpf.Program, m: corebpf.Map) -> None:
    """Kernels with kprobes (the VM matrix): every available method counts and stops; no tracefs leftovers."""
    from corebpf.links._tracefs import our_probe_events

    methods = [name for name, probe in (("kprobe_pmu", "kprobe_pmu"), ("tracefs", "kprobe_legacy"))
               if features.attach_method(probe).supported]
    for method in methods:
        for ret in (False, True):
            before = count(m)
            with links.ksyscall(p, "getpgid", retprobe=ret, method=method) as link:
                assert link.method.startswith(method)
                getpgids(10)
                assert count(m) - before >= 10
            _stops_after_close(m, getpgids)
    assert not [ln for ln in our_probe_events("kprobe_events") if f"_{os.getpid()}_" in ln]


def test_kprobe_without_kprobes_says_why_for_each_method():
    with counting_program("kprobe") as (p, m):
        if features.attach_method("kprobe_pmu").supported or features.attach_method("kprobe_legacy").supported:
            _kprobes_for_real(p, m)
            return
        with pytest.raises(links.AttachError) as ei:
            links.kprobe(p, "do_sys_openat2")
        methods = [a.method for a in ei.value.attempts]
        assert methods == ["kprobe_pmu", "tracefs"]
        assert "kprobe PMU" in str(ei.value) and "kprobe_events" in str(ei.value)
        with pytest.raises(links.AttachError, match="kprobe_events"):
            links.kprobe(p, "do_sys_openat2", method="tracefs")  # forced: tried for real, fails with its reason
        with pytest.raises(links.AttachError):
            links.ksyscall(p, "getpgid")


def test_missing_kernel_function_lists_close_matches():
    with counting_program("kprobe") as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.kprobe(p, "do_sys_openat3")
        assert "do_sys_openat2" in ei.value.matches
        with pytest.raises(links.TargetNotFoundError, match="getpgid"):
            links.ksyscall(p, "getpgidd")


def test_missing_tracepoint_lists_close_matches():
    with counting_program("tracepoint") as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.tracepoint(p, "syscalls", "sys_enter_getpgidd")
        assert "syscalls/sys_enter_getpgid" in ei.value.matches
        assert "did you mean" in str(ei.value)
    with counting_program("raw_tracepoint") as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.raw_tracepoint(p, "sched_swich")
        assert "sched_switch" in ei.value.matches


def test_missing_btf_target_lists_close_matches():
    with pytest.raises(links.TargetNotFoundError) as ei:
        links.btf_target("fentry", "do_sys_openat3")
    assert "do_sys_openat2" in ei.value.matches
    with pytest.raises(links.TargetNotFoundError) as ei:
        links.btf_target("tp_btf", "sched_swich")
    assert "sched_switch" in ei.value.matches


def test_no_fd_leaks_over_many_attaches():
    with counting_program("tracepoint") as (p, _), counting_program("raw_tracepoint") as (rp, _r):
        with links.tracepoint(p, "syscalls", "sys_enter_getpgid"):
            pass
        before = open_fds()
        for _ in range(30):
            with links.tracepoint(p, "syscalls", "sys_enter_getpgid"):
                pass
            with links.raw_tracepoint(rp, "sys_enter"):
                pass
        assert open_fds() == before


def test_bpf_cookie_reaches_the_program():
    if not features.attach_method("bpf_cookie").supported:
        missing_is_expected("features", "bpf_cookie", f"bpf cookies: {features.attach_method('bpf_cookie').reason}")
    from corebpf.asm.builder import R0, R1, assemble, call, exit_, ld_map_value, mov64, stx
    from corebpf.asm.opcodes import Size

    with corebpf.Map.create("array", 4, 8, 1) as m:
        insns = assemble([call("get_attach_cookie"), ld_map_value(R1, m.fileno(), 0), stx(Size.DW, R1, 0, R0),
                          mov64(R0, 0), exit_()])
        with corebpf.Program.load(insns, "tracepoint") as p:
            with links.tracepoint(p, "syscalls", "sys_enter_getpgid", cookie=0xC0FFEE):
                getpgids(1)
            assert count(m) == 0xC0FFEE
        try:
            raw_tp = corebpf.Program.load(insns, "raw_tracepoint")
        except corebpf.VerifierError as exc:
            # bpf_get_attach_cookie for raw_tp programs came with raw_tp cookies (Linux 6.10); a kernel
            # whose version has them must accept the call
            if not KernelVersion.parse(os.uname().release) < KernelVersion(6, 10):
                raise
            pytest.skip(f"raw_tp programs cannot call bpf_get_attach_cookie before Linux 6.10: {exc}")
        with raw_tp as p:
            try:
                link = links.raw_tracepoint(p, "sys_enter", cookie=0xBEEF)
            except corebpf.BPFError as exc:  # raw_tp cookies need Linux >= 6.10
                pytest.skip(f"raw_tp cookie refused: {exc}")
            with link:
                getpgids(1)
            assert count(m) == 0xBEEF


def test_kprobe_multi_works_or_says_why():
    with counting_program("kprobe", expected_attach_type="trace_kprobe_multi") as (p, m):
        probe = features.attach_method("kprobe_multi")
        if probe.supported:
            with links.kprobe_multi(p, ["__x64_sys_getpgid"]):
                getpgids(5)
                assert count(m) >= 5
            return
        try:
            link = links.kprobe_multi(p, "__x64_sys_getpgid*")
        except links.AttachError as exc:
            assert "kprobe_multi" in str(exc) and "CONFIG_FPROBE" in str(exc)
        else:
            # plan B worked: some kernels (Debian 6.1, CONFIG_FPROBE off) still put a program loaded for
            # TRACE_KPROBE_MULTI on single kprobes; then it must really count
            with link:
                assert link.method.startswith("kprobe_per_function"), link.method
                getpgids(5)
                assert count(m) >= 5
        with pytest.raises(links.TargetNotFoundError):
            links.kprobe_multi(p, "corebpf_no_such_function_*")


def test_perf_event_one_process_task_clock():
    with counting_program("perf_event") as (p, m):
        with links.perf_event(p, "task-clock", sample_period=200_000, pid=os.getpid()) as link:
            assert len(link.links) == 1 and "cpu -1" in link.links[0].target
            _spin(0.2)
            assert count(m) > 50  # ~1000 samples per CPU second at 200 us
        time.sleep(0.01)
        _stops_after_close(m, lambda: _spin(0.05))


def test_hardware_event_works_or_says_there_is_no_pmu():
    with counting_program("perf_event") as (p, _):
        try:
            link = links.perf_event(p, "cpu-cycles", sample_period=1_000_000)
        except corebpf.CoreBPFError as exc:
            assert "hardware" in str(exc) or "EOPNOTSUPP" in str(exc) or "ENOENT" in str(exc)
            return
        link.close()
