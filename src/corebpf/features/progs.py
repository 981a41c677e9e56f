"""Program type probes: load the smallest valid program of each type, the way bpftool does.

Types that need an attach target (tracing, LSM, struct_ops) get a real one from the kernel's BTF
(``bpf_fentry_test1``, ``bpf_lsm_file_open``, ``tcp_congestion_ops``...). Tracing has several
variants (tp_btf, fentry, fexit, fmod_ret, iter); the type counts as supported when any variant
loads, and every variant is reported on its own.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Optional

from .._sys._generated import AttachType, ProgType
from ._btfids import KIND_FUNC, KIND_STRUCT, KIND_TYPEDEF, vmlinux_types
from ._insn import ret
from .probes import ProbeResult, ProgLoader, close, failed, kernel_version_code, last_log_line, ok

BPF_F_SLEEPABLE = 1 << 4

# prog type -> kernel config option it depends on (named in reasons when the type is unknown)
PROG_CONFIG = {
    "LIRC_MODE2": "BPF_LIRC_MODE2", "LSM": "BPF_LSM", "NETFILTER": "NETFILTER_BPF_LINK",
    "LWT_IN": "LWTUNNEL_BPF", "LWT_OUT": "LWTUNNEL_BPF", "LWT_XMIT": "LWTUNNEL_BPF",
    "LWT_SEG6LOCAL": "IPV6_SEG6_BPF", "SK_SKB": "BPF_STREAM_PARSER", "SK_MSG": "BPF_STREAM_PARSER",
    "KPROBE": "BPF_EVENTS", "TRACEPOINT": "BPF_EVENTS", "PERF_EVENT": "BPF_EVENTS",
    "CGROUP_SKB": "CGROUP_BPF", "CGROUP_SOCK": "CGROUP_BPF", "CGROUP_DEVICE": "CGROUP_BPF",
    "CGROUP_SOCK_ADDR": "CGROUP_BPF", "CGROUP_SYSCTL": "CGROUP_BPF", "CGROUP_SOCKOPT": "CGROUP_BPF",
    "STRUCT_OPS": "BPF_JIT", "TRACING": "BPF_JIT", "EXT": "BPF_JIT",
}


@dataclass(frozen=True)
class ProgVariant:
    """How to load a minimal program of a type: expected attach type, BTF target, flags, return value."""

    name: str
    prog_type: ProgType
    expected_attach_type: int = 0
    btf_target: Optional[tuple[str, int]] = None  # (name, BTF kind) in vmlinux BTF
    member: Optional[str] = None                  # struct_ops: member whose index is the attach type
    prog_flags: int = 0
    retval: int = 0


_SPECIAL: dict[ProgType, list[ProgVariant]] = {
    ProgType.CGROUP_SKB: [ProgVariant("cgroup_skb", ProgType.CGROUP_SKB, retval=1)],
    ProgType.CGROUP_SOCK_ADDR: [ProgVariant("cgroup_sock_addr", ProgType.CGROUP_SOCK_ADDR,
                                            AttachType.CGROUP_INET4_CONNECT, retval=1)],
    ProgType.CGROUP_SOCKOPT: [ProgVariant("cgroup_sockopt", ProgType.CGROUP_SOCKOPT, AttachType.CGROUP_GETSOCKOPT,
                                          retval=1)],
    ProgType.SK_LOOKUP: [ProgVariant("sk_lookup", ProgType.SK_LOOKUP, AttachType.SK_LOOKUP)],
    ProgType.NETFILTER: [ProgVariant("netfilter", ProgType.NETFILTER, AttachType.NETFILTER, retval=1)],
    ProgType.SYSCALL: [ProgVariant("syscall", ProgType.SYSCALL, prog_flags=BPF_F_SLEEPABLE)],
    ProgType.TRACING: [
        ProgVariant("tp_btf", ProgType.TRACING, AttachType.TRACE_RAW_TP, ("btf_trace_sched_switch", KIND_TYPEDEF)),
        ProgVariant("fentry", ProgType.TRACING, AttachType.TRACE_FENTRY, ("bpf_fentry_test1", KIND_FUNC)),
        ProgVariant("fexit", ProgType.TRACING, AttachType.TRACE_FEXIT, ("bpf_fentry_test1", KIND_FUNC)),
        ProgVariant("fmod_ret", ProgType.TRACING, AttachType.MODIFY_RETURN,
                    ("bpf_modify_return_test", KIND_FUNC)),
        ProgVariant("iter", ProgType.TRACING, AttachType.TRACE_ITER, ("bpf_iter_task", KIND_FUNC)),
    ],
    ProgType.LSM: [ProgVariant("lsm", ProgType.LSM, AttachType.LSM_MAC, ("bpf_lsm_file_open", KIND_FUNC))],
    ProgType.STRUCT_OPS: [ProgVariant("struct_ops", ProgType.STRUCT_OPS, 0, ("tcp_congestion_ops", KIND_STRUCT),
                                      member="ssthresh")],
    ProgType.EXT: [ProgVariant("ext", ProgType.EXT)],
}


def variants(prog_type: ProgType) -> list[ProgVariant]:
    """The ways :func:`probe_prog_type` tries to load ``prog_type``."""
    return _SPECIAL.get(prog_type, [ProgVariant(prog_type.name.lower(), prog_type)])


def all_prog_types() -> list[ProgType]:
    """Every program type corebpf knows (without UNSPEC)."""
    return [t for t in ProgType if t != ProgType.UNSPEC]


def resolve_target(v: ProgVariant) -> tuple[int, int, Optional[str]]:
    """``(expected_attach_type, attach_btf_id, problem)`` for a variant; ``problem`` says why its BTF
    target could not be resolved (then the first two are 0)."""
    if v.btf_target is None:
        return v.expected_attach_type, 0, None
    t = vmlinux_types([v.btf_target])[v.btf_target]
    if t is None:
        return 0, 0, f"{v.btf_target[0]} not found in /sys/kernel/btf/vmlinux (no kernel BTF, or the symbol is absent)"
    eat = v.expected_attach_type
    if v.member is not None:
        if v.member not in t.members:
            return 0, 0, f"{v.btf_target[0]} has no member {v.member}"
        eat = t.members.index(v.member)
    return eat, t.type_id, None


def explain_failure(type_name: str, err: int, log: str) -> str:
    """A short reason for a failed program load."""
    verdict = last_log_line(log)
    if err == _errno.EPERM or err == _errno.EACCES:
        from ..node.caps import capabilities

        caps = capabilities()
        missing = caps.missing_for_bpf()
        if missing:
            return f"permission denied: missing {', '.join(missing)} (or CAP_SYS_ADMIN)"
        if caps.has("CAP_SYS_ADMIN") is False:
            return ("permission denied with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN but without CAP_SYS_ADMIN: "
                    "this needs CAP_SYS_ADMIN, or kernel policy refuses it" + (f" [{verdict}]" if verdict else ""))
        return ("EPERM with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN effective: not a missing capability but "
                "kernel policy (an LSM or a kernel built to forbid it)" + (f" [{verdict}]" if verdict else ""))
    if err == _errno.EINVAL and not log.strip():
        opt = PROG_CONFIG.get(type_name.upper())
        return "the kernel does not know this program type" + (f" (CONFIG_{opt} is off?)" if opt else "")
    if err in (_errno.EOPNOTSUPP, 524):
        return "not supported by this kernel or architecture" + (f" [{verdict}]" if verdict else "")
    return f"rejected: {verdict}" if verdict else f"rejected with {_errno.errorcode.get(err, err)}"


def probe_variant(v: ProgVariant, loader: Optional[ProgLoader] = None) -> ProbeResult:
    """Try loading one variant; the fd is closed before returning."""
    loader = loader or ProgLoader()
    eat, btf_id, problem = resolve_target(v)
    if problem:
        return failed(v.name, _errno.ENOENT, problem, source="/sys/kernel/btf/vmlinux")
    kern_version = kernel_version_code() if v.prog_type == ProgType.KPROBE else 0
    fd, log = loader.load(v.prog_type, ret(v.retval), expected_attach_type=eat, attach_btf_id=btf_id,
                          prog_flags=v.prog_flags, kern_version=kern_version)
    if fd >= 0:
        close(fd)
        return ok(v.name, "loads")
    err = -fd
    if v.prog_type == ProgType.EXT and err == _errno.EINVAL and "btf_id" in log:
        # an extension needs a target program; being asked for one proves the kernel knows the type
        return ok(v.name, "type known (extensions replace a function of a loaded program with BTF)",
                  detail=last_log_line(log))
    return failed(v.name, err, explain_failure(v.prog_type.name, err, log), detail=last_log_line(log))


@dataclass(frozen=True)
class ProgTypeResult:
    """The probe of one program type: the overall result and each variant tried."""

    result: ProbeResult
    variants: dict[str, ProbeResult] = field(default_factory=dict)
    loadable_as: Optional[ProgVariant] = None  # the variant helper probes use


def probe_prog_type(prog_type: ProgType, loader: Optional[ProgLoader] = None) -> ProgTypeResult:
    """Probe ``prog_type``: supported when any of its variants loads."""
    loader = loader or ProgLoader()
    tried: dict[str, ProbeResult] = {}
    first_ok = None
    for v in variants(prog_type):
        tried[v.name] = r = probe_variant(v, loader)
        if r.supported and first_ok is None:
            first_ok = v
    name = prog_type.name.lower()
    if first_ok is not None:
        fails = [f"{n}: {r.errno_name}" for n, r in tried.items() if not r.supported]
        reason = "loads" if len(tried) == 1 else f"loads as {first_ok.name}" + (
            f" (not as {', '.join(fails)})" if fails else "")
        main = tried[first_ok.name]
        return ProgTypeResult(ProbeResult(name, True, None, reason, "probe", main.detail), tried, first_ok)
    worst = next(iter(tried.values()))
    reason = worst.reason if len(tried) == 1 else "; ".join(f"{n}: {r.errno_name}: {r.reason}" for n, r in tried.items())
    return ProgTypeResult(ProbeResult(name, False, worst.errno, reason, worst.source, worst.detail), tried)


def probe_prog_types(loader: Optional[ProgLoader] = None) -> dict[str, ProgTypeResult]:
    """Probe every program type; keys are lower-case names (``"socket_filter"``)."""
    loader = loader or ProgLoader()
    return {t.name.lower(): probe_prog_type(t, loader) for t in all_prog_types()}
