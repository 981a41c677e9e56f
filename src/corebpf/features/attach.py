"""Attach-method probes: each tries the real attach path once with a do-nothing program and undoes it.

Programs used here return the "let it pass" value of their hook (XDP_PASS, SK_PASS, NF_ACCEPT,
cgroup allow), cgroup attaches go to a fresh empty child cgroup, network attaches happen in a
private network namespace entered by the probing thread alone, and every link is closed right away,
so a probe never changes what the host does.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import os
from typing import Callable, Iterator, Optional

from ..errors import BPFError
from .._sys import _generated as g
from .._sys._generated import AttachType, MapType, ProgType
from .._sys.syscall import bpf_raw, perf_event_open
from ._btfids import KIND_FUNC, KIND_STRUCT, KIND_TYPEDEF, vmlinux_types
from ._insn import EXIT, call, ret
from .probes import ProbeResult, ProgLoader, close, errno_name, failed, kernel_version_code, last_log_line, ok
from .progs import explain_failure

PERF_FLAG_FD_CLOEXEC = 8
PERF_EVENT_IOC_SET_BPF = 0x40042408
PERF_EVENT_IOC_ENABLE = 0x2400
XDP_PASS, SK_PASS, NF_ACCEPT, CGROUP_ALLOW = 2, 1, 1, 1


class _Fail(Exception):
    """A probe step failed; carries the result to report."""

    def __init__(self, result: ProbeResult) -> None:
        super().__init__(result.reason)
        self.result = result


class _Ctx:
    """Per-run state: one loader and the fds to close at the end of each probe."""

    def __init__(self) -> None:
        self.loader = ProgLoader()

    def prog(self, name: str, prog_type: int, retval: int = 0, eat: int = 0,
             btf_target: Optional[tuple[str, int]] = None, insns: Optional[bytes] = None) -> int:
        btf_id = 0
        if btf_target is not None:
            t = vmlinux_types([btf_target])[btf_target]
            if t is None:
                raise _Fail(failed(name, _errno.ENOENT, f"{btf_target[0]} not in vmlinux BTF",
                                   source="/sys/kernel/btf/vmlinux"))
            btf_id = t.type_id
        fd, log = self.loader.load(prog_type, insns or ret(retval), expected_attach_type=eat, attach_btf_id=btf_id,
                                   kern_version=kernel_version_code() if prog_type == ProgType.KPROBE else 0)
        if fd < 0:
            pt = ProgType(prog_type).name
            raise _Fail(failed(name, -fd, f"does not load: {explain_failure(pt, -fd, log)}",
                               detail=last_log_line(log)))
        return fd


def _link_create(prog_fd: int, target: int, attach_type: int, **extra: object) -> int:
    attr = g.LinkCreateAttr(attach_type=attach_type)
    attr.prog_fd = prog_fd
    attr.target_fd = target
    for key, value in extra.items():
        obj: object = attr
        *path, last = key.split("__")
        for part in path:
            obj = getattr(obj, part)
        setattr(obj, last, value)
    return bpf_raw(g.Cmd.LINK_CREATE, attr)


def _raw_tp_open(name: Optional[bytes], prog_fd: int) -> int:
    buf = ctypes.create_string_buffer(name) if name else None
    attr = g.RawTracepointOpenAttr(name=ctypes.addressof(buf) if buf is not None else 0, prog_fd=prog_fd)
    return bpf_raw(g.Cmd.RAW_TRACEPOINT_OPEN, attr)


def _perf_open(attr: g.PerfEventAttr, name: str, pid: int = -1, cpu: int = 0) -> int:
    try:
        return perf_event_open(attr, pid, cpu)
    except BPFError as exc:
        hint = exc.hint or exc.strerror or ""
        if exc.errno in (_errno.EACCES, _errno.EPERM):
            from ..node.caps import capabilities

            if capabilities().has("CAP_SYS_ADMIN") is False:
                hint = "refused without CAP_SYS_ADMIN (some PMUs, e.g. uprobe/kprobe, need it)"
        raise _Fail(failed(name, exc.errno or 0, f"perf_event_open failed: {hint}", source="perf_event_open")) from None


def _mkstemp(prefix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=prefix)`` without importing :mod:`tempfile` (with shutil, random, bz2
    and lzma: ~14 ms of a cold ``corebpf doctor``) on the usual path: an exclusive 0600 file in
    $TMPDIR/$TEMP/$TMP or /tmp; anything unusual falls back to :mod:`tempfile` itself."""
    base = next((os.environ[v] for v in ("TMPDIR", "TEMP", "TMP") if os.environ.get(v)), "/tmp")
    for _ in range(8):
        path = os.path.join(os.path.abspath(base), f"{prefix}{os.urandom(6).hex()}")
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600), path
        except FileExistsError:
            continue
        except OSError:
            break
    import tempfile

    return tempfile.mkstemp(prefix=prefix)


@contextlib.contextmanager
def _scratch_file() -> Iterator[str]:
    """A private file with a 'function' at offset 0 for uprobe probes (no process maps it)."""
    fd, path = _mkstemp("corebpf-uprobe-")
    try:
        os.write(fd, b"\x90" * 4096)  # nops: a valid instruction at offset 0
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def _private_netns() -> Iterator[bool]:
    """Move the calling thread (only it: namespaces are per task) into a fresh network namespace, so
    XDP/tcx/netfilter/sk_lookup probes touch nothing of the host's; yields False (and stays in the host
    namespace) when that is not allowed."""
    try:
        orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            yield False
            return
        try:
            yield True
        finally:
            if _libc.setns(orig, CLONE_NEWNET) != 0:  # pragma: no cover - cannot happen with the fd we hold
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace failed")
    finally:
        os.close(orig)


def _attach_perf_link(name: str, prog: int, pfd: int, cookie: int = 0) -> ProbeResult:
    """Attach ``prog`` to perf event ``pfd`` with a BPF link (falls back to the ioctl)."""
    lfd = _link_create(prog, pfd, AttachType.PERF_EVENT, perf_event__bpf_cookie=cookie)
    if lfd >= 0:
        close(lfd)
        return ok(name, "attaches (perf event + BPF link)")
    import fcntl

    try:
        fcntl.ioctl(pfd, PERF_EVENT_IOC_SET_BPF, prog)
    except OSError as exc:
        return failed(name, exc.errno or 0, f"attach refused: link_create {errno_name(-lfd)}, ioctl {exc.strerror}")
    return ok(name, f"attaches with the legacy ioctl (BPF link: {errno_name(-lfd)})")


# ---- individual probes -------------------------------------------------------------------------

def _p_link_create(c: _Ctx) -> ProbeResult:
    fd = _link_create(0xFFFFFFFF, 0, 0)
    if fd == -_errno.EBADF:
        return ok("link_create", "BPF_LINK_CREATE exists (Linux >= 5.7)")
    close(fd)
    return failed("link_create", -fd if fd < 0 else 0, "BPF_LINK_CREATE unknown: use legacy attach (prog_attach, ioctl)")


def _p_raw_tp(c: _Ctx) -> ProbeResult:
    prog = c.prog("raw_tp", ProgType.RAW_TRACEPOINT)
    try:
        fd = _raw_tp_open(b"sched_switch", prog)
        if fd < 0:
            return failed("raw_tp", -fd, "raw_tracepoint_open(sched_switch) refused")
        close(fd)
        return ok("raw_tp", "attaches to raw tracepoint sched_switch")
    finally:
        close(prog)


def _tracing_attach(c: _Ctx, name: str, eat: int, target: tuple[str, int]) -> ProbeResult:
    prog = c.prog(name, ProgType.TRACING, eat=eat, btf_target=target)
    try:
        fd = _raw_tp_open(None, prog)
        if fd < 0:
            return failed(name, -fd, f"loads but does not attach to {target[0]}")
        close(fd)
        return ok(name, f"loads and attaches to {target[0]}")
    finally:
        close(prog)


def _p_tp_btf(c: _Ctx) -> ProbeResult:
    return _tracing_attach(c, "tp_btf", AttachType.TRACE_RAW_TP, ("btf_trace_sched_switch", KIND_TYPEDEF))


def _p_fentry(c: _Ctx) -> ProbeResult:
    return _tracing_attach(c, "fentry", AttachType.TRACE_FENTRY, ("bpf_fentry_test1", KIND_FUNC))


def _p_fexit(c: _Ctx) -> ProbeResult:
    return _tracing_attach(c, "fexit", AttachType.TRACE_FEXIT, ("bpf_fentry_test1", KIND_FUNC))


def _p_fmod_ret(c: _Ctx) -> ProbeResult:
    return _tracing_attach(c, "fmod_ret", AttachType.MODIFY_RETURN, ("bpf_modify_return_test", KIND_FUNC))


def _p_lsm(c: _Ctx) -> ProbeResult:
    prog = c.prog("lsm", ProgType.LSM, eat=AttachType.LSM_MAC, btf_target=("bpf_lsm_file_open", KIND_FUNC))
    try:
        fd = _raw_tp_open(None, prog)
        if fd < 0:
            return failed("lsm", -fd, "loads but does not attach: is 'bpf' in the active LSM list (lsm= boot option)?")
        close(fd)
        return ok("lsm", "loads and attaches to file_open")
    finally:
        close(prog)


def _p_iter(c: _Ctx) -> ProbeResult:
    prog = c.prog("iter", ProgType.TRACING, eat=AttachType.TRACE_ITER, btf_target=("bpf_iter_task", KIND_FUNC))
    try:
        fd = _link_create(prog, 0, AttachType.TRACE_ITER)
        if fd < 0:
            return failed("iter", -fd, "task iterator link refused")
        close(fd)
        return ok("iter", "task iterator link created")
    finally:
        close(prog)


def _tracepoint_id(category: str, event: str) -> int:
    from ..node.tracing import tracefs_path

    base = tracefs_path()
    if base is None:
        raise _Fail(failed("tracepoint", _errno.ENOENT, "tracefs is not mounted: tracepoint ids unknown "
                           "(mount -t tracefs tracefs /sys/kernel/tracing)", source="/proc/self/mountinfo"))
    path = f"{base}/events/{category}/{event}/id"
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError) as exc:
        raise _Fail(failed("tracepoint", getattr(exc, "errno", None) or _errno.ENOENT,
                           f"cannot read {path}", source=path)) from None


def _p_tracepoint(c: _Ctx) -> ProbeResult:
    tp_id = _tracepoint_id("sched", "sched_switch")
    prog = c.prog("tracepoint", ProgType.TRACEPOINT)
    try:
        attr = g.PerfEventAttr(type=g.PerfType.TRACEPOINT, config=tp_id, sample_type=0)
        attr.sample_period = 1
        attr.disabled = 1
        pfd = _perf_open(attr, "tracepoint", -1, 0)
        try:
            r = _attach_perf_link("tracepoint", prog, pfd)
            return ok("tracepoint", "attaches to sched/sched_switch " + r.reason.removeprefix("attaches ")) \
                if r.supported else r
        finally:
            close(pfd)
    finally:
        close(prog)


def _p_perf_event(c: _Ctx) -> ProbeResult:
    prog = c.prog("perf_event", ProgType.PERF_EVENT)
    try:
        attr = g.PerfEventAttr(type=g.PerfType.SOFTWARE, config=g.PerfSwId.CPU_CLOCK)
        attr.sample_period = 1_000_000
        attr.disabled = 1
        pfd = _perf_open(attr, "perf_event", -1, 0)
        try:
            return _attach_perf_link("perf_event", prog, pfd)
        finally:
            close(pfd)
    finally:
        close(prog)


def _p_bpf_cookie(c: _Ctx) -> ProbeResult:
    prog = c.prog("bpf_cookie", ProgType.PERF_EVENT, insns=call(g.HelperId.get_attach_cookie) + EXIT)
    try:
        attr = g.PerfEventAttr(type=g.PerfType.SOFTWARE, config=g.PerfSwId.CPU_CLOCK)
        attr.sample_period = 1_000_000
        attr.disabled = 1
        pfd = _perf_open(attr, "bpf_cookie", -1, 0)
        try:
            lfd = _link_create(prog, pfd, AttachType.PERF_EVENT, perf_event__bpf_cookie=0xC0FFEE)
            if lfd < 0:
                return failed("bpf_cookie", -lfd, "perf link with a cookie refused")
            close(lfd)
            return ok("bpf_cookie", "bpf_get_attach_cookie loads and a perf link takes a cookie (Linux >= 5.15)")
        finally:
            close(pfd)
    finally:
        close(prog)


def _pmu_type(kind: str) -> int:
    path = f"/sys/bus/event_source/devices/{kind}/type"
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        raise _Fail(failed(f"{kind}_pmu", _errno.ENOENT, f"no {kind} PMU ({path} missing): "
                           + ("kernel built without CONFIG_KPROBES/CONFIG_KPROBE_EVENTS" if kind == "kprobe"
                              else "kernel built without CONFIG_UPROBE_EVENTS"), source=path)) from None


def _p_kprobe_pmu(c: _Ctx) -> ProbeResult:
    pmu = _pmu_type("kprobe")
    prog = c.prog("kprobe_pmu", ProgType.KPROBE)
    try:
        sym = ctypes.create_string_buffer(b"bpf_fentry_test1")
        attr = g.PerfEventAttr(type=pmu)
        attr.kprobe_func = ctypes.addressof(sym)
        attr.disabled = 1
        pfd = _perf_open(attr, "kprobe_pmu", -1, 0)
        try:
            return _attach_perf_link("kprobe_pmu", prog, pfd)
        finally:
            close(pfd)
    finally:
        close(prog)


def _p_kprobe_legacy(c: _Ctx) -> ProbeResult:
    from ..node.tracing import tracefs_path

    base = tracefs_path()
    if base is None:
        return failed("kprobe_legacy", _errno.ENOENT, "tracefs is not mounted (kprobe_events unknown)",
                      source="/proc/self/mountinfo")
    path = f"{base}/kprobe_events"
    if os.path.exists(path):
        return ProbeResult("kprobe_legacy", True, None, f"{path} exists (not written to: that would create an event)",
                           path)
    return failed("kprobe_legacy", _errno.ENOENT, f"{path} missing: kernel built without CONFIG_KPROBE_EVENTS",
                  source=path)


def _multi_kprobe(c: _Ctx, name: str, eat: int) -> ProbeResult:
    prog = c.prog(name, ProgType.KPROBE, eat=eat)
    try:
        sym = ctypes.create_string_buffer(b"bpf_fentry_test1")
        syms = (ctypes.c_uint64 * 1)(ctypes.addressof(sym))
        fd = _link_create(prog, 0, eat, kprobe_multi__syms=ctypes.addressof(syms), kprobe_multi__cnt=1)
        if fd < 0:
            why = {_errno.EOPNOTSUPP: "not supported: kernel built without CONFIG_FPROBE",
                   _errno.EINVAL: "attach type unknown to this kernel (Linux >= 5.18 needed)"}.get(-fd, "refused")
            return failed(name, -fd, why)
        close(fd)
        return ok(name, "attaches to bpf_fentry_test1")
    finally:
        close(prog)


def _p_kprobe_multi(c: _Ctx) -> ProbeResult:
    return _multi_kprobe(c, "kprobe_multi", AttachType.TRACE_KPROBE_MULTI)


def _p_kprobe_session(c: _Ctx) -> ProbeResult:
    return _multi_kprobe(c, "kprobe_session", AttachType.TRACE_KPROBE_SESSION)


def _p_uprobe_pmu(c: _Ctx) -> ProbeResult:
    pmu = _pmu_type("uprobe")
    prog = c.prog("uprobe_pmu", ProgType.KPROBE)
    try:
        with _scratch_file() as path:
            raw = ctypes.create_string_buffer(path.encode())
            attr = g.PerfEventAttr(type=pmu)
            attr.uprobe_path = ctypes.addressof(raw)
            attr.probe_offset = 0
            attr.disabled = 1
            pfd = _perf_open(attr, "uprobe_pmu", -1, 0)
            try:
                return _attach_perf_link("uprobe_pmu", prog, pfd)
            finally:
                close(pfd)
    finally:
        close(prog)


def _p_uprobe_multi(c: _Ctx) -> ProbeResult:
    prog = c.prog("uprobe_multi", ProgType.KPROBE, eat=AttachType.TRACE_UPROBE_MULTI)
    try:
        with _scratch_file() as path:
            raw = ctypes.create_string_buffer(path.encode())
            offsets = (ctypes.c_uint64 * 1)(0)
            fd = _link_create(prog, 0, AttachType.TRACE_UPROBE_MULTI, uprobe_multi__path=ctypes.addressof(raw),
                              uprobe_multi__offsets=ctypes.addressof(offsets), uprobe_multi__cnt=1)
            if fd < 0:
                return failed("uprobe_multi", -fd, "uprobe.multi link refused (Linux >= 6.6 with CONFIG_UPROBES)")
            close(fd)
            return ok("uprobe_multi", "uprobe.multi link created")
    finally:
        close(prog)


def _p_xdp_link(c: _Ctx) -> ProbeResult:
    prog = c.prog("xdp_link", ProgType.XDP, XDP_PASS, eat=AttachType.XDP)
    try:
        with _private_netns() as private:
            fd = _link_create(prog, 1, AttachType.XDP)  # ifindex 1 = lo, XDP_PASS
        where = "lo of a private network namespace" if private else "the host's lo"
        if fd == -_errno.EBUSY:
            return ok("xdp_link", f"supported ({where} already has an XDP program: EBUSY)")
        if fd < 0:
            return failed("xdp_link", -fd, "XDP link refused (Linux >= 5.9 for XDP links)")
        close(fd)
        return ok("xdp_link", f"XDP link (generic mode) on {where} created and closed")
    finally:
        close(prog)


def _p_tcx(c: _Ctx) -> ProbeResult:
    prog = c.prog("tcx", ProgType.SCHED_CLS, 0, eat=AttachType.TCX_INGRESS)  # TCX_PASS
    try:
        with _private_netns() as private:
            fd = _link_create(prog, 1, AttachType.TCX_INGRESS)
            if fd >= 0:
                close(fd)
        if fd < 0:
            return failed("tcx", -fd, "tcx link refused (Linux >= 6.6); plan B: tc clsact + cls_bpf via netlink")
        return ok("tcx", "tcx ingress link on " + ("lo of a private network namespace" if private else "the host's lo")
                  + " created and closed")
    finally:
        close(prog)


def _p_netkit(c: _Ctx) -> ProbeResult:
    from ..node.kconfig import load_kconfig

    cfg = load_kconfig()
    on = cfg.enabled("NETKIT")
    if on is None:
        return ProbeResult("netkit", False, None, "unknown: no kernel config, and probing needs a netkit device",
                           "not probed")
    return ProbeResult("netkit", bool(on), None, "CONFIG_NETKIT=" + (cfg.get("NETKIT") or "n") +
                       " (not tried: attaching needs a netkit device)", "kconfig")


@contextlib.contextmanager
def _child_cgroup() -> Iterator[int]:
    from ..node.mounts import find_mount

    m = find_mount("cgroup2")
    if m is None:
        raise _Fail(failed("cgroup_link", _errno.ENOENT, "no cgroup2 mount", source="/proc/self/mountinfo"))
    path = os.path.join(m.mount_point, f"corebpf-probe-{os.getpid()}")
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _Fail(failed("cgroup_link", exc.errno or 0, f"cannot create a probe cgroup: {exc.strerror}",
                           source=path)) from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _p_cgroup_link(c: _Ctx) -> ProbeResult:
    prog = c.prog("cgroup_link", ProgType.CGROUP_SKB, CGROUP_ALLOW, eat=AttachType.CGROUP_INET_INGRESS)
    try:
        with _child_cgroup() as cg:
            fd = _link_create(prog, cg, AttachType.CGROUP_INET_INGRESS)
            if fd < 0:
                return failed("cgroup_link", -fd, "cgroup link refused (Linux >= 5.7); plan B: BPF_PROG_ATTACH")
            close(fd)
            return ok("cgroup_link", "cgroup_skb link on an empty child cgroup created and closed")
    finally:
        close(prog)


def _p_netns_link(c: _Ctx) -> ProbeResult:
    prog = c.prog("netns_link", ProgType.SK_LOOKUP, SK_PASS, eat=AttachType.SK_LOOKUP)
    try:
        with _private_netns() as private:
            ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
            try:
                fd = _link_create(prog, ns, AttachType.SK_LOOKUP)
            finally:
                os.close(ns)
        if fd < 0:
            return failed("netns_link", -fd, "sk_lookup netns link refused (Linux >= 5.9)")
        close(fd)
        return ok("netns_link", "sk_lookup link on " + ("a private" if private else "this") +
                  " network namespace created and closed")
    finally:
        close(prog)


def _p_netfilter_link(c: _Ctx) -> ProbeResult:
    prog = c.prog("netfilter_link", ProgType.NETFILTER, NF_ACCEPT, eat=AttachType.NETFILTER)
    try:
        with _private_netns():  # netfilter hooks are per network namespace
            fd = _link_create(prog, 0, AttachType.NETFILTER, netfilter__pf=2, netfilter__hooknum=1,
                              netfilter__priority=100)  # NFPROTO_IPV4, NF_INET_LOCAL_IN, accept
            if fd >= 0:
                close(fd)
        if fd < 0:
            return failed("netfilter_link", -fd, "netfilter link refused (Linux >= 6.4, CONFIG_NETFILTER_BPF_LINK)")
        return ok("netfilter_link", "IPv4 LOCAL_IN hook link created and closed")
    finally:
        close(prog)


def _p_sockmap_link(c: _Ctx) -> ProbeResult:
    attr = g.MapCreateAttr(map_type=MapType.SOCKMAP, key_size=4, value_size=4, max_entries=1)
    mfd = bpf_raw(g.Cmd.MAP_CREATE, attr)
    if mfd < 0:
        return failed("sockmap_link", -mfd, "could not create a sockmap (CONFIG_BPF_STREAM_PARSER?)")
    try:
        prog = c.prog("sockmap_link", ProgType.SK_SKB, SK_PASS, eat=AttachType.SK_SKB_VERDICT)
        try:
            fd = _link_create(prog, mfd, AttachType.SK_SKB_VERDICT)
            if fd < 0:
                return failed("sockmap_link", -fd, "sockmap links refused (Linux >= 6.10); plan B: BPF_PROG_ATTACH")
            close(fd)
            return ok("sockmap_link", "sk_skb verdict link on a new sockmap created and closed")
        finally:
            close(prog)
    finally:
        close(mfd)


BPF_F_LINK = 1 << 13
_TCP_CA_MEMBERS = ("ssthresh", "cong_avoid", "undo_cwnd")  # what tcp_register_congestion_control requires


def _p_struct_ops_link(c: _Ctx) -> ProbeResult:
    """Register a do-nothing TCP congestion control through a struct_ops link, then unregister it.

    Nothing uses it meanwhile: a congestion control is only used when a socket or sysctl names it.
    """
    import struct

    from .maps import _btf_fd

    name = "struct_ops_link"
    ops_key, value_key = ("tcp_congestion_ops", KIND_STRUCT), ("bpf_struct_ops_tcp_congestion_ops", KIND_STRUCT)
    found = vmlinux_types([ops_key, value_key])
    ops, value_t = found[ops_key], found[value_key]
    if ops is None or value_t is None or "data" not in value_t.members:
        return failed(name, _errno.ENOENT, "tcp_congestion_ops struct_ops not in vmlinux BTF",
                      source="/sys/kernel/btf/vmlinux")
    fds: list[int] = []
    try:
        value = bytearray(value_t.size)
        data = value_t.offsets[value_t.members.index("data")]
        for member in _TCP_CA_MEMBERS:
            idx = ops.members.index(member)
            prog = c.prog(name, ProgType.STRUCT_OPS, 0, eat=idx, btf_target=ops_key)
            fds.append(prog)
            struct.pack_into("<Q", value, data + ops.offsets[idx], prog)
        tag = f"cbpf{os.getpid() % 10**8}".encode()
        at = data + ops.offsets[ops.members.index("name")]
        value[at:at + len(tag)] = tag
        btf = _btf_fd()
        if btf < 0:
            return failed(name, -btf, "BPF_BTF_LOAD failed")
        fds.append(btf)
        attr = g.MapCreateAttr(map_type=MapType.STRUCT_OPS, key_size=4, value_size=value_t.size, max_entries=1,
                               map_flags=BPF_F_LINK, btf_fd=btf, btf_vmlinux_value_type_id=value_t.type_id)
        mfd = bpf_raw(g.Cmd.MAP_CREATE, attr)
        if mfd < 0:
            return failed(name, -mfd, "struct_ops map with BPF_F_LINK refused (Linux >= 6.4 for struct_ops links)")
        fds.append(mfd)
        key = ctypes.c_uint32(0)
        buf = ctypes.create_string_buffer(bytes(value), len(value))
        uattr = g.MapElemAttr(map_fd=mfd, key=ctypes.addressof(key))
        uattr.value = ctypes.addressof(buf)
        r = bpf_raw(g.Cmd.MAP_UPDATE_ELEM, uattr)
        if r < 0:
            return failed(name, -r, "filling the struct_ops map refused")
        lfd = _link_create(mfd, 0, AttachType.STRUCT_OPS)
        if lfd < 0:
            return failed(name, -lfd, "struct_ops link refused; plan B: register through the map update alone")
        close(lfd)
        return ok(name, "tcp_congestion_ops registered through a struct_ops link and unregistered")
    finally:
        for fd in reversed(fds):
            close(fd)


def _p_ringbuf(c: _Ctx) -> ProbeResult:
    import mmap

    attr = g.MapCreateAttr(map_type=MapType.RINGBUF, max_entries=mmap.PAGESIZE)
    fd = bpf_raw(g.Cmd.MAP_CREATE, attr)
    if fd < 0:
        return failed("ringbuf", -fd, "ring buffer maps unavailable (Linux >= 5.8); plan B: perf buffer")
    close(fd)
    return ok("ringbuf", "ring buffer map created (plan B when missing: perf event array)")


def _p_batch_ops(c: _Ctx) -> ProbeResult:
    attr = g.MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=4, max_entries=1)
    fd = bpf_raw(g.Cmd.MAP_CREATE, attr)
    if fd < 0:
        return failed("batch_ops", -fd, "could not create a hash map")
    try:
        keys = (ctypes.c_uint32 * 1)()
        values = (ctypes.c_uint32 * 1)()
        out = ctypes.c_uint32()
        battr = g.MapBatchAttr(out_batch=ctypes.addressof(out), keys=ctypes.addressof(keys),
                               values=ctypes.addressof(values), count=1, map_fd=fd)
        r = bpf_raw(g.Cmd.MAP_LOOKUP_BATCH, battr)
        if r >= 0 or r == -_errno.ENOENT:
            return ok("batch_ops", "BPF_MAP_LOOKUP_BATCH works (Linux >= 5.6)")
        return failed("batch_ops", -r, "batch map operations unavailable: fall back to one call per element")
    finally:
        close(fd)


def _p_token(c: _Ctx) -> ProbeResult:
    attr = g.TokenCreateAttr(bpffs_fd=0xFFFFFFFF)
    r = bpf_raw(g.Cmd.TOKEN_CREATE, attr)
    if r == -_errno.EBADF:
        return ok("bpf_token", "BPF_TOKEN_CREATE exists (Linux >= 6.9); tokens need a bpffs mounted with delegate_* "
                  "options inside a user namespace")
    close(r)
    return failed("bpf_token", -r if r < 0 else 0, "BPF_TOKEN_CREATE unknown (Linux < 6.9)")


def _p_probe_write_user(c: _Ctx) -> ProbeResult:
    fd, log = c.loader.load(ProgType.TRACEPOINT, call(g.HelperId.probe_write_user) + EXIT)
    if fd >= 0:
        close(fd)
        return ok("probe_write_user", "bpf_probe_write_user allowed")
    line = next((ln for ln in log.splitlines() if "cannot use helper" in ln or "unknown func" in ln), "")
    if line:
        from ..node.lockdown import read_lockdown

        mode = read_lockdown(mount=False).mode
        why = f"refused: lockdown is '{mode}'" if mode not in (None, "none") else "refused by the kernel"
        return failed("probe_write_user", -fd, why + " (programs writing user memory cannot load)", detail=line)
    return ok("probe_write_user", "helper accepted by the verifier (argument checks aside)", detail=last_log_line(log))


def _p_test_run(c: _Ctx) -> ProbeResult:
    prog = c.prog("test_run", ProgType.SOCKET_FILTER)
    try:
        data = ctypes.create_string_buffer(64)
        attr = g.ProgTestRunAttr(prog_fd=prog, data_size_in=64, data_in=ctypes.addressof(data), repeat=1)
        r = bpf_raw(g.Cmd.PROG_TEST_RUN, attr)
        if r < 0:
            return failed("test_run", -r, "BPF_PROG_TEST_RUN refused for socket_filter")
        return ok("test_run", "BPF_PROG_TEST_RUN works")
    finally:
        close(prog)


ATTACH_PROBES: dict[str, Callable[[_Ctx], ProbeResult]] = {
    "link_create": _p_link_create, "raw_tp": _p_raw_tp, "tp_btf": _p_tp_btf, "fentry": _p_fentry,
    "fexit": _p_fexit, "fmod_ret": _p_fmod_ret, "lsm": _p_lsm, "iter": _p_iter, "tracepoint": _p_tracepoint,
    "perf_event": _p_perf_event, "bpf_cookie": _p_bpf_cookie, "kprobe_pmu": _p_kprobe_pmu,
    "kprobe_legacy": _p_kprobe_legacy, "kprobe_multi": _p_kprobe_multi, "kprobe_session": _p_kprobe_session,
    "uprobe_pmu": _p_uprobe_pmu, "uprobe_multi": _p_uprobe_multi, "xdp_link": _p_xdp_link, "tcx": _p_tcx,
    "netkit": _p_netkit, "cgroup_link": _p_cgroup_link, "netns_link": _p_netns_link,
    "netfilter_link": _p_netfilter_link, "sockmap_link": _p_sockmap_link,
    "struct_ops_link": _p_struct_ops_link, "ringbuf": _p_ringbuf, "batch_ops": _p_batch_ops, "bpf_token": _p_token,
    "probe_write_user": _p_probe_write_user, "test_run": _p_test_run,
}

# Names of the BTF targets the probes above use (prefetched in one BTF pass by probe_all).
BTF_TARGETS = [("btf_trace_sched_switch", KIND_TYPEDEF), ("bpf_fentry_test1", KIND_FUNC),
               ("bpf_modify_return_test", KIND_FUNC), ("bpf_lsm_file_open", KIND_FUNC), ("bpf_iter_task", KIND_FUNC)]


def probe_attach(name: str) -> ProbeResult:
    """Run one attach probe by name (a key of :data:`ATTACH_PROBES`); never raises."""
    return _run(name, _Ctx())


def _run(name: str, c: _Ctx) -> ProbeResult:
    try:
        return ATTACH_PROBES[name](c)
    except _Fail as f:
        r = f.result
        return ProbeResult(name, r.supported, r.errno, r.reason, r.source, r.detail)
    except OSError as exc:
        return failed(name, exc.errno or 0, f"probe failed: {exc.strerror or exc}")


def probe_attach_methods() -> dict[str, ProbeResult]:
    """Run every attach probe."""
    c = _Ctx()
    return {name: _run(name, c) for name in ATTACH_PROBES}
