"""The doctor's judgement on synthetic facts and probe results (no kernel needed)."""

from __future__ import annotations

from corebpf.features import FeatureReport
from corebpf.features.probes import ProbeResult
from corebpf.node import NodeFacts
from corebpf.node._fact import Fact
from corebpf.node.btfinfo import BTFInfo
from corebpf.node.caps import from_status_text
from corebpf.node.kconfig import KConfig
from corebpf.node.kernel import KernelInfo
from corebpf.node.lockdown import Lockdown
from corebpf.node.mounts import MountStatus
from corebpf.node.readiness import LIMITED, NOT_READY, READY, judge, verdict_of
from corebpf.node.sandbox import SandboxInfo
from corebpf.node.sysctl import JITState
from corebpf.node.tracing import TracingInfo

ROOT = "CapEff:\t000001ffffffffff\n"
NOBODY = "CapEff:\t0000000000000000\n"


def facts(*, lockdown: str | None = "none", caps: str = ROOT, jit: int = 1, btf: bool = True) -> NodeFacts:
    f = lambda v: Fact(v, "test")  # noqa: E731
    mounts = {k: MountStatus(k, k, True, (f"/{k}",), None, "mounted") for k in
              ("bpffs", "tracefs", "debugfs", "securityfs", "cgroup2")}
    return NodeFacts(
        kernel=KernelInfo("6.18.0", "#1", "x86_64", (6, 18, 0), f("id")),
        kconfig=KConfig({"KPROBES": "y", "LSM": "bpf"}, "test"),
        btf=BTFInfo("/sys/kernel/btf/vmlinux", btf, 1 if btf else None, (), error=None if btf else "missing"),
        jit=JITState(f(jit), f(0), f(1), f(1 << 20)),
        lockdown=Lockdown(lockdown, ("none", "integrity", "confidentiality"), "test"),
        unprivileged_bpf_disabled=f(2), perf_event_paranoid=f(2), capabilities=from_status_text(caps),
        mounts=mounts, sandbox=SandboxInfo(None, None, None),
        tracing=TracingInfo(f(6), f(7), "/sys/kernel/tracing", True, True, True))


def report(refused: tuple[str, ...] = (), errno: int = 1) -> FeatureReport:
    names = ["fentry", "fexit", "fmod_ret", "lsm", "kprobe_pmu", "kprobe_legacy", "kprobe_multi", "tp_btf",
             "raw_tp", "tracepoint", "probe_write_user"]
    attach = {n: ProbeResult(n, n not in refused, errno if n in refused else None, "x") for n in names}
    progs = {n: ProbeResult(n, not (n == "lsm" and "lsm" in refused), None, "loads") for n in ("xdp", "lsm", "ext")}
    return FeatureReport(progs, {}, {}, {}, attach, {})


def ok_bpf(missing: list[str] | None = None) -> dict:
    return {"usable": True, "errno": None, "reason": "ok", "missing_capabilities": missing or []}


def ids(findings: list) -> set[str]:
    return {f.id for f in findings}


def test_ready_host() -> None:
    found = judge(facts(), ok_bpf(), report())
    assert verdict_of(found) == READY
    assert ids(found) == {"unprivileged_off"}  # informational only


def test_this_machine_like_host() -> None:
    rep = report(refused=("fentry", "fexit", "fmod_ret", "lsm", "kprobe_pmu", "kprobe_legacy", "kprobe_multi",
                          "probe_write_user"))
    found = judge(facts(lockdown="integrity"), ok_bpf(), rep)
    assert verdict_of(found) == LIMITED
    assert {"lockdown", "fentry_refused", "lsm_refused", "no_kprobes"} <= ids(found)
    by_id = {f.id: f for f in found}
    assert "EPERM" in by_id["fentry_refused"].title
    assert by_id["fentry_refused"].plan_b.endswith("tp_btf -> raw_tp -> tracepoint")
    assert "tp_btf -> raw_tp -> tracepoint" in by_id["no_kprobes"].plan_b
    assert "bpf_probe_write_user" in by_id["lockdown"].meaning


def test_kprobes_present_are_the_plan_b_for_fentry() -> None:
    found = judge(facts(), ok_bpf(), report(refused=("fentry", "fexit", "fmod_ret")))
    plan = {f.id: f for f in found}["fentry_refused"].plan_b
    assert "kprobe (perf PMU)" in plan and "no_kprobes" not in ids(found)


def test_bpf_unusable_is_not_ready() -> None:
    bpf = {"usable": False, "errno": 1, "reason": "bpf() refused (EPERM): missing CAP_BPF",
           "missing_capabilities": ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]}
    found = judge(facts(caps=NOBODY), bpf, None)
    assert verdict_of(found) == NOT_READY
    problem = next(f for f in found if f.severity == "problem")
    assert "CAP_BPF" in problem.meaning and "CAP_BPF" in " ".join(problem.evidence)


def test_other_limitations() -> None:
    found = judge(facts(jit=0, btf=False, lockdown="confidentiality"), ok_bpf(), report())
    assert {"jit_off", "no_btf", "lockdown"} <= ids(found)
    assert "bpf_probe_read_kernel" in {f.id: f for f in found}["lockdown"].plan_b or \
        "typed context" in {f.id: f for f in found}["lockdown"].plan_b
