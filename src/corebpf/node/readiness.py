"""Is this node ready for eBPF? Gather host facts, probe results and the inventory, then judge.

Kept apart from the CLI so the report (the ``--json`` document, see ``doctor_schema.json``) can be
built and tested without click or rich.
"""

from __future__ import annotations

import errno as _errno
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

SCHEMA_VERSION = 1

READY, LIMITED, NOT_READY = "ready", "ready_with_limitations", "not_ready"


@dataclass
class Finding:
    """One thing the user should know: what, what it means, and plan B."""

    id: str
    severity: str  # "problem" (not ready) | "limitation" | "info"
    title: str
    meaning: str
    plan_b: str = ""
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"id": self.id, "severity": self.severity, "title": self.title, "meaning": self.meaning,
                "plan_b": self.plan_b, "evidence": self.evidence}


def bpf_syscall_state() -> dict[str, Any]:
    """Whether this process can use bpf(): try the smallest map create (one syscall) and explain a refusal."""
    from .._sys import _generated as g
    from .._sys.syscall import bpf_raw
    from .caps import capabilities
    from .sysctl import read_sysctl

    attr = g.MapCreateAttr(map_type=g.MapType.ARRAY, key_size=4, value_size=4, max_entries=1)
    ret = bpf_raw(g.Cmd.MAP_CREATE, attr)
    missing = capabilities().missing_for_bpf()
    if ret >= 0:
        os.close(ret)
        return {"usable": True, "errno": None, "reason": "bpf() works (an array map was created)",
                "missing_capabilities": missing}
    err = -ret
    if err in (_errno.EPERM, _errno.EACCES):
        core = [c for c in missing if c == "CAP_BPF"] or ["CAP_BPF"]
        unpriv = read_sysctl("kernel.unprivileged_bpf_disabled").value
        reason = (f"bpf() refused (EPERM): missing {' and '.join(core)} (or CAP_SYS_ADMIN)"
                  + (f" and kernel.unprivileged_bpf_disabled={unpriv} forbids unprivileged use" if unpriv else "")
                  + "; run as root or grant the capabilities (setcap cap_bpf,cap_perfmon,cap_net_admin+ep, "
                  "or a container with --cap-add BPF --cap-add PERFMON --cap-add NET_ADMIN)")
        return {"usable": False, "errno": err, "reason": reason, "missing_capabilities": missing or core}
    if err == _errno.ENOSYS:
        return {"usable": False, "errno": err, "reason": "no bpf() system call: kernel built without "
                "CONFIG_BPF_SYSCALL, or a seccomp filter blocks it", "missing_capabilities": missing}
    return {"usable": False, "errno": err, "reason": f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err)}",
            "missing_capabilities": missing}


def object_ids() -> Optional[dict[str, list[int]]]:
    """The ids of every loaded program, map, link and BTF object right now (one ``GET_NEXT_ID`` walk per
    kind: cheap, and light on imports), or None when they cannot be listed (the inventory says why)."""
    from .._sys.ops import iter_ids
    from ..errors import BPFError, BPFInvalidArgumentError

    found: dict[str, list[int]] = {}
    for kind in ("prog", "map", "link", "btf"):
        try:
            found[kind] = iter_ids(kind)
        except BPFInvalidArgumentError:
            if kind not in ("link", "btf"):
                return None
            found[kind] = []  # kernels before 5.8 (links) / 5.4 (BTF ids): nothing to list, as the inventory does
        except BPFError:
            return None
    return found


class _Counted:
    """What the summary needs of one object: its id, type name and owners (a plain class: this module
    is on doctor's cold path, where each dataclass costs its own code generation)."""

    __slots__ = ("id", "type", "owners")

    def __init__(self, obj_id: int, type_name: str, owners: tuple[Any, ...]) -> None:
        self.id, self.type, self.owners = obj_id, type_name, owners


def _count_objects(ids: dict[str, list[int]]) -> tuple[list[_Counted], list[_Counted], list[_Counted], int]:
    """Programs, maps and links among ``ids`` with their types and owners, and how many BTF objects are
    left: what the summary shows, without building full inventory records (names, fdinfo, attach points,
    the record classes' import). Objects gone since the ids were listed are skipped, as in a snapshot."""
    from .._sys import _generated as g
    from .._sys import ops
    from ..errors import BPFNotFoundError
    from ..inventory.listing import open_by_id
    from ..inventory.names import enum_name
    from ..inventory.owners import scan_owners

    found: dict[str, list[tuple[int, str]]] = {}
    for kind, info_cls, enum_cls in (("prog", g.ProgInfo, g.ProgType), ("map", g.MapInfo, g.MapType),
                                     ("link", g.LinkInfo, g.LinkType), ("btf", g.BtfInfo, None)):
        found[kind] = []
        for obj_id in ids.get(kind, ()):
            fd = open_by_id(kind, obj_id)
            if fd is None:
                continue
            with fd:
                info = info_cls()
                try:
                    ops.obj_get_info_by_fd(int(fd), info)
                except BPFNotFoundError:
                    continue
                found[kind].append((obj_id, enum_name(enum_cls, info.type) if enum_cls is not None else ""))
    index = scan_owners()  # after the walk: none of its fds are open any more
    return ([_Counted(i, t, index.of("prog", i)) for i, t in found["prog"]],
            [_Counted(i, t, index.of("map", i)) for i, t in found["map"]],
            [_Counted(i, t, index.of("link", i)) for i, t in found["link"]], len(found["btf"]))


def inventory_summary(top: int = 5, ids: Optional[dict[str, list[int]]] = None) -> dict[str, Any]:
    """Counts of loaded programs/maps/links by type and the processes holding the most (never raises);
    ``ids`` (from :func:`object_ids`) limits it to the objects that existed then."""
    try:
        if ids is not None:
            progs, maps, links, btfs = _count_objects(ids)
        else:
            from .. import inventory

            snap = inventory.snapshot(owners=True, pins=False)
            progs, maps, links, btfs = list(snap.programs), list(snap.maps), list(snap.links), len(snap.btfs)
    except Exception as exc:  # noqa: BLE001 - any failure becomes the section's error
        return {"available": False, "error": str(exc), "programs": {"total": 0, "by_type": {}},
                "maps": {"total": 0, "by_type": {}}, "links": {"total": 0, "by_type": {}}, "btfs": 0,
                "top_owners": []}
    owners: dict[int, dict[str, Any]] = {}
    for kind, records in (("programs", progs), ("maps", maps), ("links", links)):
        for rec in records:
            for o in rec.owners or ():
                entry = owners.setdefault(o.pid, {"pid": o.pid, "comm": o.comm, "uid": o.uid, "programs": 0,
                                                  "maps": 0, "links": 0})
                entry[kind] += 1
    ranked = sorted(owners.values(), key=lambda e: (-(e["programs"] + e["maps"] + e["links"]), e["pid"]))

    def count(records: Any) -> dict[str, Any]:
        return {"total": len(records), "by_type": dict(Counter(r.type for r in records).most_common())}

    return {"available": True, "error": None, "programs": count(progs), "maps": count(maps),
            "links": count(links), "btfs": btfs, "top_owners": ranked[:top]}


def _works(report: Any, section: str, name: str) -> Optional[bool]:
    if report is None:
        return None
    r = getattr(report, section).get(name)
    return None if r is None else r.supported


def _tracing_plan(report: Any) -> tuple[list[str], str]:
    """The attach chain fentry -> kprobe.multi -> kprobe -> tp_btf -> raw_tp -> tracepoint, filtered to what works."""
    chain = [("fentry", "fentry/fexit"), ("kprobe_multi", "kprobe.multi"), ("kprobe_pmu", "kprobe (perf PMU)"),
             ("kprobe_legacy", "kprobe (tracefs)"), ("tp_btf", "tp_btf"), ("raw_tp", "raw_tp"),
             ("tracepoint", "tracepoint")]
    working = [label for key, label in chain if _works(report, "attach", key)]
    return working, " -> ".join(working) if working else "none"


def judge(node: Any, bpf: dict[str, Any], report: Any) -> list[Finding]:
    """Turn facts and probe results into findings (problems, limitations, notes)."""
    out: list[Finding] = []
    caps = node.capabilities
    if not bpf["usable"]:
        out.append(Finding("bpf_unusable", "problem", "bpf() cannot be used by this process", bpf["reason"],
                           "run as root, or grant CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN",
                           [f"missing: {', '.join(bpf['missing_capabilities']) or 'none'}",
                            f"kernel.unprivileged_bpf_disabled = {node.unprivileged_bpf_disabled.value}"]))
    elif bpf["missing_capabilities"]:
        out.append(Finding("missing_capabilities", "limitation",
                           "missing capabilities: " + ", ".join(bpf["missing_capabilities"]),
                           "some program types or attach points will be refused with EPERM",
                           "grant " + ", ".join(bpf["missing_capabilities"]), [f"source: {caps.source}"]))
    elif caps.has("CAP_SYS_ADMIN") is False:
        out.append(Finding("no_sys_admin", "limitation", "CAP_SYS_ADMIN is not effective",
                           "eBPF works with CAP_BPF/CAP_PERFMON/CAP_NET_ADMIN, but listing loaded objects, uprobe/kprobe "
                           "perf events and some program types need CAP_SYS_ADMIN (see the EPERM/EACCES probes below)",
                           "grant CAP_SYS_ADMIN where those are needed, or run those parts as root",
                           [f"source: {caps.source}"]))
    if report is not None and bpf["usable"] and not any(r.supported for r in report.prog_types.values()):
        out.append(Finding("no_programs", "problem", "no program type loads", "bpf() answers but every load fails",
                           "check capabilities, lockdown and LSM policy (dmesg)"))
    lock = node.lockdown
    if lock.mode in ("integrity", "confidentiality"):
        pw = report.attach.get("probe_write_user") if report is not None else None
        ev = [f"{lock.source}: [{lock.mode}]"] + ([f"probe: {pw.detail or pw.reason}"] if pw is not None else [])
        plan = ("do not write user memory from BPF: send the data to a user-space agent through a ring buffer "
                "and let it act (or signal the process with bpf_send_signal)")
        if lock.mode == "confidentiality":
            plan = ("read data from typed context (tp_btf, raw_tp, tracepoint arguments) instead of "
                    "bpf_probe_read_kernel; " + plan)
        out.append(Finding("lockdown", "limitation", f"kernel lockdown is '{lock.mode}'", lock.meaning, plan, ev))
    elif lock.mode is None:
        out.append(Finding("lockdown_unknown", "info", "lockdown mode unknown", lock.error or "unreadable"))
    if report is not None:
        working, chain = _tracing_plan(report)
        tramp = [n for n in ("fentry", "fexit", "fmod_ret") if _works(report, "attach", n) is False]
        if tramp:
            errs = sorted({report.attach[n].errno_name or "?" for n in tramp})
            out.append(Finding(
                "fentry_refused", "limitation", f"{'/'.join(tramp)} programs fail to load ({', '.join(errs)})",
                "BPF trampolines are refused here: SEC(\"fentry/...\"), SEC(\"fexit/...\") and SEC(\"fmod_ret/...\") "
                "programs will not load (" + report.attach[tramp[0]].reason.removeprefix("does not load: ") + ")",
                f"attach to the same events another way; what works here, best first: {chain}",
                [f"{n}: {report.attach[n].errno_name}" for n in tramp]))
        if _works(report, "attach", "lsm") is False:
            r = report.attach["lsm"]
            out.append(Finding("lsm_refused", "limitation", f"BPF LSM programs fail to load ({r.errno_name})",
                               "SEC(\"lsm/...\") programs cannot enforce security policy here (" +
                               r.reason.removeprefix("does not load: ") + ")",
                               "observe with tp_btf/raw_tp/tracepoint; enforce network/device policy with cgroup "
                               "programs (cgroup_skb, cgroup_sock_addr, cgroup_device)",
                               [f"lsm: {r.errno_name}", f"CONFIG_LSM={node.kconfig.get('LSM')}"]))
        kprobe_ways = [n for n in ("kprobe_pmu", "kprobe_legacy", "kprobe_multi") if _works(report, "attach", n)]
        if not kprobe_ways:
            ev = [f"{n}: {report.attach[n].reason}" for n in ("kprobe_pmu", "kprobe_legacy", "kprobe_multi")
                  if n in report.attach]
            ev.append(f"CONFIG_KPROBES={node.kconfig.get('KPROBES')}, CONFIG_KPROBE_EVENTS={node.kconfig.get('KPROBE_EVENTS')}")
            rest = [w for w in working if not w.startswith(("kprobe", "fentry"))]
            out.append(Finding("no_kprobes", "limitation", "no kprobe support",
                               "SEC(\"kprobe/...\")/kretprobe and kprobe.multi programs load but have nothing to attach "
                               "to: there is no kprobe PMU, no tracefs kprobe_events and no fprobe",
                               "use tracepoints instead: " + (" -> ".join(rest) or "none available") +
                               " (e.g. syscalls:sys_enter_* or sched:*); uprobes still work for user space"
                               if rest else "no tracing attach method works", ev))
        if _works(report, "prog_types", "ext") is False:
            out.append(Finding("ext_refused", "info", "freplace (BPF_PROG_TYPE_EXT) refused "
                               f"({report.prog_types['ext'].errno_name})", "function replacement is unavailable",
                               "use tail calls (prog_array) to swap logic at run time"))
    if node.jit.enable.value == 0:
        out.append(Finding("jit_off", "limitation", "the JIT is off", "programs run in the interpreter (slow)",
                           "sysctl -w net.core.bpf_jit_enable=1"))
    if not node.btf.vmlinux_present:
        out.append(Finding("no_btf", "limitation", "no kernel BTF", node.btf.error or "",
                           "CO-RE needs an external BTF for this kernel (e.g. BTFHub) and tp_btf/fentry are unavailable"))
    for kind in ("bpffs", "tracefs"):
        st = node.mounts.get(kind)
        if st is not None and not st.mounted:
            out.append(Finding(f"{kind}_missing", "limitation" if not st.mountable else "info",
                               f"{kind} is not mounted", st.reason,
                               f"mount -t {st.fs_type} {st.fs_type} <standard path> (corebpf mounts it when allowed)"))
    if node.unprivileged_bpf_disabled.value in (1, 2):
        out.append(Finding("unprivileged_off", "info", "unprivileged bpf() is disabled",
                           "only processes with CAP_BPF/CAP_SYS_ADMIN can use eBPF",
                           evidence=[f"kernel.unprivileged_bpf_disabled = {node.unprivileged_bpf_disabled.value}"]))
    return out


def verdict_of(findings: list[Finding]) -> str:
    """not_ready when any problem, ready_with_limitations when any limitation, else ready."""
    if any(f.severity == "problem" for f in findings):
        return NOT_READY
    if any(f.severity == "limitation" for f in findings):
        return LIMITED
    return READY


@dataclass
class Start:
    """What :func:`build_report` does before any probe object may exist, done (see :func:`start`)."""

    mount: bool
    probe: bool
    use_cache: bool
    inventory: bool
    started: datetime
    lockdown: Any  # node.Lockdown, read (and securityfs mounted) first
    bpf: dict[str, Any]
    probers: list[Any] = field(default_factory=list)  # features.background.ProbeProcess, told to go
    ids: Optional[dict[str, list[int]]] = None  # object ids listed before the probes (with a prober)
    inventory_before: Optional[dict[str, Any]] = None  # the whole inventory, when ids could not be listed

    def matches(self, mount: bool, probe: bool, use_cache: bool, inventory: bool) -> bool:
        """Whether this start serves a report built with these options."""
        return (self.mount, self.probe, self.use_cache, self.inventory) == (mount, probe, use_cache, inventory)


def start(*, mount: bool = True, probe: bool = True, use_cache: bool = False, inventory: bool = True,
          fork: bool = False, probers: Optional[list[Any]] = None) -> Start:
    """The first part of :func:`build_report`: what must come before the probes. Forks the prober
    (with ``fork``), mounts securityfs and tracefs (probes read the lockdown mode and tracepoint ids),
    checks bpf(), lists the ids of the loaded objects (so the inventory never counts a probe's own),
    then lets the prober go. ``probers``: already forked (by :func:`corebpf.features.background.start_split`),
    waiting for go."""
    from .lockdown import read_lockdown
    from .mounts import ensure_mounted

    started = datetime.now(timezone.utc)
    probers = list(probers or ())
    if not probers and fork and probe and not use_cache:  # a cached report is read faster than a process starts
        from ..features.background import start_split

        probers = start_split()
    lockdown = read_lockdown(mount=mount)
    if mount:
        try:
            ensure_mounted("tracefs")
        except Exception:  # noqa: BLE001 - reported by the mounts fact
            pass
    bpf = bpf_syscall_state()
    # with a prober only the ids are listed now, and the records read while it works; without one
    # (or where ids cannot be listed) the whole inventory is taken before any probe
    ids = object_ids() if inventory and probers else None
    inv = inventory_summary() if inventory and ids is None and probe else None
    for prober in probers:
        if bpf["usable"]:
            prober.go()
        else:
            prober.cancel()
    if not bpf["usable"]:
        probers = []
    return Start(mount, probe, use_cache, inventory, started, lockdown, bpf, probers, ids, inv)


_prestarted: Optional[Start] = None


def prestart(*, mount: bool = True, inventory: bool = True, probers: Optional[list[Any]] = None) -> None:
    """:func:`start` for ``corebpf doctor`` (probing, no cache, forked probers), called by the CLI before it
    imports click and the rest, so those imports overlap the probes; :func:`build_report` takes it over."""
    global _prestarted
    _prestarted = start(mount=mount, probe=True, use_cache=False, inventory=inventory, fork=True, probers=probers)


def build_report(*, mount: bool = True, probe: bool = True, use_cache: bool = False,
                 inventory: bool = True, fork: bool = False) -> dict[str, Any]:
    """The whole doctor document (the ``--json`` output); never raises for host problems.

    With ``fork``, the probes run in a child process (:mod:`corebpf.features.background`) while this
    one gathers facts and the inventory: what a short-lived command wants, not a library caller. A
    :func:`prestart` made with the same options is used instead of starting again."""
    global _prestarted
    st, _prestarted = _prestarted, None
    if st is not None and not st.matches(mount, probe, use_cache, inventory):
        for prober in st.probers:
            prober.cancel()  # (they probe, unused: the options differ)
        st = None
    if st is None:
        st = start(mount=mount, probe=probe, use_cache=use_cache, inventory=inventory, fork=fork)
    from .. import __version__
    from .. import node as node_mod

    facts = node_mod.facts(mount=mount, lockdown=st.lockdown)
    bpf = st.bpf
    inv = st.inventory_before
    if inventory and inv is None:
        inv = inventory_summary(ids=st.ids)
    report = None
    probe_error = None
    if probe and bpf["usable"]:
        try:
            if st.probers:
                from ..features.background import collect

                report = collect(st.probers)
            else:
                from .. import features

                report = features.probe_all(use_disk_cache=use_cache)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            probe_error = f"{type(exc).__name__}: {exc}"
            if st.probers:
                from ..features.background import ProbeFailed

                if isinstance(exc, ProbeFailed):  # the child's own "Type: message"
                    probe_error = str(exc)
    findings = judge(facts, bpf, report)
    if probe_error:
        findings.append(Finding("probes_failed", "limitation", "the feature probes failed", probe_error,
                                "run with --no-probe for the host facts, and report this as a corebpf bug"))
    status = verdict_of(findings)
    counts = Counter(f.severity for f in findings)
    summary = {READY: "ready: eBPF works here",
               LIMITED: f"ready with limitations: {counts['limitation']} limitation(s), see below",
               NOT_READY: "not ready: " + "; ".join(f.title for f in findings if f.severity == "problem")}[status]
    return {
        "schema_version": SCHEMA_VERSION,
        "corebpf_version": __version__,
        "generated_at": st.started.isoformat(),
        "verdict": {"status": status, "summary": summary, "findings": [f.to_dict() for f in findings]},
        "bpf_syscall": bpf,
        "node": facts.to_dict(),
        "features": report.to_dict() if report is not None else None,
        "features_error": probe_error,
        "inventory": inv,
        "mounted_by_corebpf": dict(node_mod.MOUNTED_BY_US),
        "euid": os.geteuid(),
    }
