"""Attach from section names, as libbpf's auto-attach does: ``tracepoint/syscalls/sys_enter_getpgid``,
``raw_tp/sys_enter``, ``fentry/do_unlinkat``, ``kprobe/do_sys_openat2+8``, ``uprobe//usr/bin/bash:readline``,
``usdt/app:provider:name``, ``iter/task``, ...

Sections that name no target (``xdp``, ``tc/ingress``, ``cgroup_skb/ingress``, ``socket``, ``perf_event``,
``sk_lookup``, ``netfilter``, ``sk_skb/...``) attach when the caller gives the target as keywords
(``interface=``, ``cgroup=``, ``sock=``, ``event=``, ``netns=``, ``map=``...); :func:`attach_all` skips
them otherwise and says which keywords they need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from ..errors import CoreBPFError
from .link import Link


class NeedsTarget(CoreBPFError):
    """The section names no attach point and the caller gave none (``needs`` lists the keywords)."""

    def __init__(self, section: str, needs: str) -> None:
        self.section = section
        self.needs = needs
        super().__init__(f"section {section!r} needs an attach target: pass {needs}")


def _section_of(spec_or_section: Any) -> tuple[str, Any]:
    """(section name, section definition) from a ProgramSpec, a Program with ``.section``, or a string."""
    from ..elf.sections import match_section

    section = spec_or_section if isinstance(spec_or_section, str) else getattr(spec_or_section, "section", "")
    if not section:
        raise ValueError(f"cannot tell the section of {spec_or_section!r}")
    sdef = match_section(section)
    if sdef is None:
        raise CoreBPFError(f"unknown section {section!r}: libbpf would not know how to attach it")
    return section, sdef


def _split_probe(target: str, kind: str) -> tuple[str, int]:
    m = re.fullmatch(r"([^+]+)(?:\+(0x[0-9a-fA-F]+|\d+))?", target)
    if not m:
        raise CoreBPFError(f"invalid {kind} target {target!r}: expected function[+offset]")
    return m.group(1), int(m.group(2), 0) if m.group(2) else 0


def _split_uprobe(target: str) -> tuple[str, Optional[str], int]:
    path, sep, func = target.rpartition(":")
    if not sep or not path:
        raise CoreBPFError(f"invalid uprobe target {target!r}: expected /path/to/binary:function[+offset]")
    if func == "":
        return path, None, 0
    name, off = _split_probe(func, "uprobe")
    if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", name):
        return path, None, int(name, 0) + off
    return path, name, off


def _require(section: str, targets: Mapping[str, Any], *names: str) -> None:
    if not any(n in targets for n in names):
        raise NeedsTarget(section, " or ".join(f"{n}=" for n in names))


def attach_program(program: Any, spec_or_section: Any, **targets: Any) -> Link:
    """Attach a loaded ``program`` as its section says (``spec_or_section``: a ProgramSpec or section name).

    ``targets`` give or override attach points: ``interface``/``netns``/``mode``/``direction`` (xdp, tc),
    ``cgroup`` (cgroup programs), ``sock`` (socket filters), ``event``/``sample_freq``/``sample_period``
    (perf_event), ``map`` (sk_skb/sk_msg, map iterators), ``family``/``hook``/``priority`` (netfilter),
    ``pid``/``cookie`` (probes), ``function``/``binary`` (to fill a section without a target), ``maps`` (the
    object's maps: USDT programs built on ``usdt.bpf.h`` need its ``__bpf_usdt_specs``).
    """
    from .. import links as api

    section, sdef = _section_of(spec_or_section)
    t = sdef.attach_target
    base = sdef.prefix.rstrip("+/")
    for suffix in (".s", ".w"):
        base = base.removesuffix(suffix)
    cookie = targets.get("cookie", 0)
    if base in ("tracepoint", "tp"):
        t = targets.get("tracepoint", t)
        if not t:
            raise NeedsTarget(section, "tracepoint='category/name'")
        return api.tracepoint(program, t, cookie=cookie)
    if base in ("raw_tracepoint", "raw_tp"):
        t = targets.get("tracepoint", t)
        if not t:
            raise NeedsTarget(section, "tracepoint='name'")
        return api.raw_tracepoint(program, t, cookie=cookie)
    if base in ("tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "freplace", "lsm_cgroup"):
        if base == "lsm_cgroup":
            _require(section, targets, "cgroup")
            return api.cgroup(program, targets["cgroup"], "lsm_cgroup")
        return api.tracing(program, cookie=cookie, attach_type=sdef.attach_type if cookie else None)
    if base == "iter":
        keys = ("map", "cgroup", "cgroup_order", "tid", "pid", "pid_fd")
        return api.iterator(program, **{k: v for k, v in targets.items() if k in keys})
    if base in ("kprobe", "kretprobe"):
        fn, off = _split_probe(targets.get("function", t), base) if (t or "function" in targets) else ("", 0)
        if not fn:
            raise NeedsTarget(section, "function='kernel_function'")
        return api.kprobe(program, fn, off, retprobe=base == "kretprobe", cookie=cookie)
    if base in ("ksyscall", "kretsyscall"):
        name = targets.get("syscall", t)
        if not name:
            raise NeedsTarget(section, "syscall='name'")
        return api.ksyscall(program, name, retprobe=base == "kretsyscall", cookie=cookie)
    if base in ("kprobe.multi", "kretprobe.multi", "kprobe.session"):
        pattern = targets.get("functions", t)
        if not pattern:
            raise NeedsTarget(section, "functions='pattern*'")
        return api.kprobe_multi(program, pattern, retprobe=base == "kretprobe.multi", session=base == "kprobe.session")
    if base in ("uprobe", "uretprobe"):
        if t:
            binary, fn, off = _split_uprobe(t)
        else:
            _require(section, targets, "binary")
            binary, fn, off = targets["binary"], targets.get("function"), targets.get("offset", 0)
        return api.uprobe(program, binary, fn, off, retprobe=base == "uretprobe", pid=targets.get("pid"),
                          cookie=cookie)
    if base in ("uprobe.multi", "uretprobe.multi"):
        if t:
            binary, _, pattern = t.rpartition(":")
        else:
            _require(section, targets, "binary")
            binary, pattern = targets["binary"], targets.get("functions", "*")
        return api.uprobe_multi(program, binary, [pattern] if isinstance(pattern, str) else pattern,
                                pid=targets.get("pid"), retprobe=base == "uretprobe.multi")
    if base == "usdt":
        parts = t.rsplit(":", 2) if t else []
        if len(parts) != 3:
            _require(section, targets, "binary")
            parts = [targets["binary"], targets["provider"], targets["name"]]
        maps = targets.get("maps") or {}
        specs = targets.get("specs_map") or (maps.get("__bpf_usdt_specs") if hasattr(maps, "get") else None)
        ips = targets.get("ip_map") or (maps.get("__bpf_usdt_ip_to_spec_id") if hasattr(maps, "get") else None)
        return api.usdt(program, parts[0], parts[1], parts[2], pid=targets.get("pid"), cookie=cookie,
                        specs_map=specs, ip_map=ips, use_cookie=targets.get("use_cookie"))
    return _attach_targeted(program, section, sdef, base, targets)


def _attach_targeted(program: Any, section: str, sdef: Any, base: str, targets: Mapping[str, Any]) -> Link:
    from .. import links as api

    method = targets.get("method")
    not_attachable = {
        "XDP_DEVMAP": "is run from a devmap entry: store the program's fd in the DEVMAP value",
        "XDP_CPUMAP": "is run from a cpumap entry: store the program's fd in the CPUMAP value",
    }
    why = not_attachable.get(sdef.attach_type_name) or {
        "SYSCALL": "is not attached: run it with program.test_run()",
        "STRUCT_OPS": "is attached through its struct_ops map: corebpf.links.struct_ops(map)",
        "LIRC_MODE2": "is attached to a lirc device: not supported by corebpf.links",
    }.get(sdef.prog_type.name)
    if why:
        raise CoreBPFError(f"section {section!r} {why}")
    if base.startswith("xdp"):
        _require(section, targets, "interface")
        return api.xdp(program, targets["interface"], mode=targets.get("mode"), netns=targets.get("netns"),
                       method=method)
    if base in ("tc", "tcx", "classifier", "tc/ingress", "tc/egress", "tcx/ingress", "tcx/egress"):
        _require(section, targets, "interface")
        direction = targets.get("direction") or ("egress" if section.endswith("egress") else "ingress")
        return api.tc(program, targets["interface"], direction, netns=targets.get("netns"), method=method)
    if sdef.prog_type.name.startswith("CGROUP") or base.startswith("cgroup") or base == "sockops":
        _require(section, targets, "cgroup")
        if sdef.attach_type is None and "attach_type" not in targets:
            raise NeedsTarget(section, "attach_type=")
        return api.cgroup(program, targets["cgroup"], targets.get("attach_type", sdef.attach_type), method=method)
    if base == "socket":
        _require(section, targets, "sock")
        return api.socket_filter(program, targets["sock"])
    if base == "perf_event":
        _require(section, targets, "event", "sample_freq", "sample_period")
        keys = ("sample_freq", "sample_period", "cpus", "pid", "cookie")
        return api.perf_event(program, targets.get("event", "cpu-clock"), **{k: v for k, v in targets.items()
                                                                             if k in keys})
    if base in ("sk_lookup", "flow_dissector"):
        return api.netns(program, sdef.attach_type or base, targets.get("netns"))
    if base == "netfilter":
        keys = ("family", "hook", "priority", "defrag", "netns")
        return api.netfilter(program, **{k: v for k, v in targets.items() if k in keys})
    if base.startswith("sk_skb") or base == "sk_msg":
        _require(section, targets, "map")
        if sdef.attach_type is None and "attach_type" not in targets:
            raise NeedsTarget(section, "attach_type=")
        return api.sockmap(program, targets["map"], targets.get("attach_type", sdef.attach_type))
    if base.startswith("sk_reuseport"):
        _require(section, targets, "sock")
        return api.reuseport(program, targets["sock"])
    raise CoreBPFError(f"section {section!r} ({sdef.prog_type.name.lower()}) has no attach function in corebpf.links")


@dataclass
class AttachReport:
    """What :func:`attach_all` did: ``links`` by program name, ``skipped`` (name -> why)."""

    links: dict[str, Link] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        """Close every link (newest first)."""
        for name in reversed(list(self.links)):
            self.links.pop(name).close()


def attach_all(obj: Any, targets: Optional[Mapping[str, Mapping[str, Any]]] = None, *,
               strict: bool = False, skip_failures: bool = False) -> AttachReport:
    """Attach every loaded program of ``obj`` (a :class:`corebpf.Object`: ``obj.programs`` and
    ``obj.spec.programs``) by its section name.

    ``targets`` maps program names to keyword targets (see :func:`attach_program`). Programs whose
    section needs a target nobody gave are skipped (``report.skipped`` says what they need) unless
    ``strict``. Any other failure closes what was attached and raises, unless ``skip_failures``: then
    a program no method can attach here (:class:`AttachError`, e.g. a kprobe on a kernel without
    kprobes) is skipped with the reasons.
    """
    from .planb import AttachError

    report = AttachReport()
    targets = targets or {}
    specs = getattr(getattr(obj, "spec", None), "programs", {}) or {}
    try:
        for name, prog in obj.programs.items():
            spec = specs.get(name) if isinstance(specs, Mapping) else None
            source: Union[str, Any] = spec if spec is not None else getattr(prog, "section", "")
            if spec is not None and not getattr(spec, "autoload", True):
                report.skipped[name] = "autoload is off"
                continue
            kw = dict(targets.get(name, {}))
            if getattr(obj, "maps", None) is not None:
                kw.setdefault("maps", obj.maps)  # usdt.bpf.h programs need the object's spec map
            try:
                report.links[name] = attach_program(prog, source, **kw)
            except NeedsTarget as exc:
                if strict:
                    raise
                report.skipped[name] = str(exc)
            except AttachError as exc:
                if not skip_failures:
                    raise
                report.skipped[name] = str(exc)
    except BaseException:
        report.close()
        raise
    return report


__all__ = ["attach_program", "attach_all", "AttachReport", "NeedsTarget"]
