"""The kernel build configuration (``/proc/config.gz`` or ``/boot/config-$(uname -r)``)."""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

# The options that decide what eBPF can do here, with what each one gives.
BPF_OPTIONS: dict[str, str] = {
    "BPF_SYSCALL": "the bpf() system call",
    "BPF_JIT": "the eBPF JIT compiler",
    "BPF_JIT_ALWAYS_ON": "interpreter removed: every program is JIT-compiled",
    "BPF_UNPRIV_DEFAULT_OFF": "unprivileged bpf() off by default",
    "BPF_LSM": "LSM programs (also needs 'bpf' in the lsm= list)",
    "BPF_EVENTS": "BPF programs on kprobes, uprobes and tracepoints",
    "DEBUG_INFO_BTF": "kernel BTF at /sys/kernel/btf/vmlinux (CO-RE, tp_btf, fentry)",
    "DEBUG_INFO_BTF_MODULES": "BTF for kernel modules",
    "KPROBES": "kprobes (kprobe programs need them)",
    "KPROBE_EVENTS": "kprobe events (kprobe PMU and tracefs kprobe_events)",
    "UPROBE_EVENTS": "uprobe events",
    "FPROBE": "fprobe (kprobe.multi links)",
    "FTRACE": "the function tracer framework",
    "FUNCTION_TRACER": "function tracing (fentry/fexit trampolines)",
    "DYNAMIC_FTRACE_WITH_DIRECT_CALLS": "ftrace direct calls (BPF trampolines for fentry/fexit)",
    "FUNCTION_ERROR_INJECTION": "error injection (fmod_ret, bpf_override_return)",
    "BPF_KPROBE_OVERRIDE": "bpf_override_return in kprobes",
    "CGROUP_BPF": "cgroup programs",
    "NET_CLS_BPF": "tc classifier (cls_bpf)",
    "NET_ACT_BPF": "tc action (act_bpf)",
    "NET_SCH_INGRESS": "tc ingress/clsact qdisc",
    "XDP_SOCKETS": "AF_XDP sockets (xskmap)",
    "BPF_STREAM_PARSER": "sockmap/sockhash stream parser",
    "LWTUNNEL_BPF": "lightweight tunnel programs",
    "NETFILTER_BPF_LINK": "netfilter programs",
    "NETKIT": "netkit devices",
    "SECURITY_LOCKDOWN_LSM": "kernel lockdown (can refuse bpf_probe_write_user / kernel reads)",
    "LSM": "the active LSM list",
    "MODULES": "loadable kernel modules",
    "PERF_EVENTS": "perf events (perf_event programs, perf buffers)",
    "TRACING": "the tracing infrastructure (tracefs)",
}


def parse_kconfig(text: str) -> dict[str, str]:
    """Parse kernel config text into ``{"BPF_SYSCALL": "y", "HZ": "250", "KPROBES": "n"}``.

    ``# CONFIG_X is not set`` becomes ``"n"``; quoted strings are unquoted; the ``CONFIG_``
    prefix is dropped. Lines that are neither are ignored.
    """
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            options[line[9:-11].strip()] = "n"
            continue
        if not line.startswith("CONFIG_") or "=" not in line:
            continue
        name, _, value = line[7:].partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        options[name.strip()] = value
    return options


@dataclass(frozen=True)
class KConfig:
    """The parsed kernel config. ``source`` is the file read; ``error`` says why none was."""

    options: Mapping[str, str] = field(default_factory=dict)
    source: Optional[str] = None
    error: Optional[str] = None

    @property
    def available(self) -> bool:
        """True when a config was found and parsed."""
        return self.source is not None and self.error is None

    def get(self, name: str) -> Optional[str]:
        """The raw value of ``CONFIG_<name>`` (``"y"``, ``"m"``, ``"n"``, a number...), None if unknown."""
        return self.options.get(name.removeprefix("CONFIG_")) if self.available else None

    def enabled(self, name: str) -> Optional[bool]:
        """True for ``y``/``m``, False for not set or absent, None when no config could be read."""
        if not self.available:
            return None
        return self.options.get(name.removeprefix("CONFIG_"), "n") in ("y", "m")

    def bpf_options(self) -> dict[str, Optional[str]]:
        """The BPF-relevant options (:data:`BPF_OPTIONS`) with their values (``"n"`` when absent)."""
        if not self.available:
            return {name: None for name in BPF_OPTIONS}
        return {name: self.options.get(name, "n") for name in BPF_OPTIONS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view with the BPF options highlighted (not the full config)."""
        return {"source": self.source, "error": self.error, "count": len(self.options),
                "bpf_options": self.bpf_options()}


def config_paths(release: Optional[str] = None) -> list[str]:
    """Where the config of kernel ``release`` may be, most reliable first."""
    release = release or os.uname().release
    return ["/proc/config.gz", f"/boot/config-{release}", f"/lib/modules/{release}/config",
            f"/usr/lib/modules/{release}/config"]


def load_kconfig(paths: Optional[Iterable[str]] = None) -> KConfig:
    """Read and parse the running kernel's config from the first readable of ``paths`` (never raises)."""
    errors = []
    for path in (paths if paths is not None else config_paths()):
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            errors.append(f"{path}: {getattr(exc, 'strerror', None) or exc}")
            continue
        return KConfig(parse_kconfig(data.decode("utf-8", errors="replace")), path)
    return KConfig({}, None, "; ".join(errors) or "no path to try"
                   " (hint: CONFIG_IKCONFIG_PROC gives /proc/config.gz; distributions ship /boot/config-*)")
