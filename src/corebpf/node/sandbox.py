"""Is this host a VM, a container, or a sandbox? Evidence-based, like ``systemd-detect-virt``.

Every conclusion lists the evidence it rests on. :func:`detect_from` is pure (tests feed it
sample texts); :func:`detect` gathers the inputs from this host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from ._fact import exists, read_text

# DMI vendor/product substrings -> hypervisor name
_DMI_VENDORS = (
    ("QEMU", "qemu"), ("KVM", "kvm"), ("VMware", "vmware"), ("VirtualBox", "oracle"), ("innotek", "oracle"),
    ("Xen", "xen"), ("Microsoft Corporation", "microsoft"), ("Amazon EC2", "amazon"), ("Google", "google"),
    ("Parallels", "parallels"), ("Bochs", "bochs"), ("BHYVE", "bhyve"), ("Firecracker", "firecracker"),
    ("Cloud Hypervisor", "cloud-hypervisor"), ("OpenStack", "openstack"),
)
_CGROUP_MARKERS = (("kubepods", "kubernetes"), ("docker", "docker"), ("containerd", "containerd"),
                   ("libpod", "podman"), ("lxc", "lxc"), ("crio", "cri-o"))
INIT_PID_NS_INODE = 0xEFFFFFFC  # PROC_PID_INIT_INO: the inode number of the initial pid namespace


@dataclass(frozen=True)
class Evidence:
    """One observation: what it points at (``vm``/``container``/``sandbox``), a name, and where it was seen."""

    kind: str
    name: str
    detail: str
    source: str

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly view."""
        return {"kind": self.kind, "name": self.name, "detail": self.detail, "source": self.source}


@dataclass(frozen=True)
class SandboxInfo:
    """The conclusions (None: no evidence) and every piece of evidence behind them."""

    vm: Optional[str]
    container: Optional[str]
    sandbox: Optional[str]
    evidence: tuple[Evidence, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> str:
        """One line: ``"VM (firecracker), container (docker)"`` or ``"bare metal, no container"``."""
        parts = [f"VM ({self.vm})" if self.vm else "no VM evidence (bare metal?)",
                 f"container ({self.container})" if self.container else "no container"]
        if self.sandbox:
            parts.append(f"sandbox ({self.sandbox})")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"vm": self.vm, "container": self.container, "sandbox": self.sandbox, "summary": self.summary,
                "evidence": [e.to_dict() for e in self.evidence]}


def detect_from(*, dmi: Mapping[str, str], cpuinfo: str, pid1_cgroup: str, files: Mapping[str, bool],
                env: Mapping[str, str], pid1_env: str = "", cmdline: str = "", release: str = "",
                proc_version: str = "", pid_ns_inode: Optional[int] = None,
                hypervisor_type: str = "") -> SandboxInfo:
    """Decide from gathered inputs (pure; see :func:`detect` for where each comes from)."""
    ev: list[Evidence] = []
    # --- VM ---
    for key, value in dmi.items():
        for marker, name in _DMI_VENDORS:
            if marker.lower() in value.lower():
                ev.append(Evidence("vm", name, f"{key} = {value.strip()!r}", f"/sys/class/dmi/id/{key}"))
                break
    if hypervisor_type.strip():
        ev.append(Evidence("vm", hypervisor_type.strip(), "hypervisor type", "/sys/hypervisor/type"))
    flags = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), "")
    if " hypervisor" in flags:
        ev.append(Evidence("vm", "unknown", "CPU flag 'hypervisor' (running under a hypervisor)", "/proc/cpuinfo"))
    if "firecracker" in cmdline.lower():
        ev.append(Evidence("vm", "firecracker", "kernel command line mentions firecracker", "/proc/cmdline"))
    if "-fc-" in release or release.endswith("-fc"):
        ev.append(Evidence("vm", "firecracker", f"kernel release {release!r} has the '-fc' suffix", "uname(2)"))
    # --- container ---
    if files.get("/.dockerenv"):
        ev.append(Evidence("container", "docker", "/.dockerenv exists", "/.dockerenv"))
    if files.get("/run/.containerenv"):
        ev.append(Evidence("container", "podman", "/run/.containerenv exists", "/run/.containerenv"))
    if env.get("KUBERNETES_SERVICE_HOST"):
        ev.append(Evidence("container", "kubernetes", "KUBERNETES_SERVICE_HOST is set", "environment"))
    for item in pid1_env.split("\0"):
        if item.startswith("container="):
            ev.append(Evidence("container", item[10:] or "unknown", f"PID 1 has {item}", "/proc/1/environ"))
    if env.get("container"):
        ev.append(Evidence("container", env["container"], f"container={env['container']}", "environment"))
    for line in pid1_cgroup.splitlines():
        path = line.split(":", 2)[-1]
        for marker, name in _CGROUP_MARKERS:
            if marker in path:
                ev.append(Evidence("container", name, f"PID 1 cgroup {path!r}", "/proc/1/cgroup"))
                break
        else:
            continue
        break
    if pid_ns_inode is not None and pid_ns_inode != INIT_PID_NS_INODE:
        ev.append(Evidence("container", "unknown", f"pid namespace inode {pid_ns_inode} is not the initial one "
                           f"({INIT_PID_NS_INODE})", "/proc/self/ns/pid"))
    # --- sandbox ---
    if "gvisor" in proc_version.lower() or "runsc" in cmdline.lower():
        ev.append(Evidence("sandbox", "gvisor", "gVisor kernel signature", "/proc/version"))
    if files.get("/proc/self/ns/pid") is False and files.get("/proc/self/mountinfo") is False:
        ev.append(Evidence("sandbox", "unknown", "procfs lacks namespace files", "/proc/self"))

    def pick(kind: str) -> Optional[str]:
        names = [e.name for e in ev if e.kind == kind]
        if not names:
            return None
        specific = [n for n in names if n != "unknown"]
        return max(set(specific), key=specific.count) if specific else "unknown"

    return SandboxInfo(pick("vm"), pick("container"), pick("sandbox"), tuple(ev))


def _read(path: str) -> str:
    return read_text(path, 1 << 16).value or ""


def detect() -> SandboxInfo:
    """Gather evidence from this host and decide (never raises)."""
    dmi = {}
    for key in ("sys_vendor", "product_name", "board_vendor", "bios_vendor", "chassis_vendor"):
        value = _read(f"/sys/class/dmi/id/{key}").strip()
        if value:
            dmi[key] = value
    try:
        pid_ns: Optional[int] = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pid_ns = None
    files = {p: exists(p) for p in ("/.dockerenv", "/run/.containerenv", "/proc/self/ns/pid", "/proc/self/mountinfo")}
    return detect_from(dmi=dmi, cpuinfo=_read("/proc/cpuinfo")[:1 << 14], pid1_cgroup=_read("/proc/1/cgroup"),
                       files=files, env=dict(os.environ), pid1_env=_read("/proc/1/environ"),
                       cmdline=_read("/proc/cmdline"), release=os.uname().release,
                       proc_version=_read("/proc/version"), pid_ns_inode=pid_ns,
                       hypervisor_type=_read("/sys/hypervisor/type"))
