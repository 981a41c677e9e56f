"""Kernel lockdown mode (``/sys/kernel/security/lockdown``), mounting securityfs when needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._fact import read_text

LOCKDOWN_MEANING: dict[str, str] = {
    "none": "no lockdown: every BPF helper is allowed",
    "integrity": ("the kernel may not be modified from user space: bpf_probe_write_user is refused "
                  "(programs that write user memory fail to load); reading kernel memory still works"),
    "confidentiality": ("kernel memory may not be read either: bpf_probe_read_kernel and friends, "
                        "kprobes via tracefs and bpf_probe_write_user are refused"),
}


@dataclass(frozen=True)
class Lockdown:
    """The lockdown state.

    ``mode`` is ``none``/``integrity``/``confidentiality`` or None (``error`` says why);
    ``choices`` the modes the kernel offers; ``mounted_securityfs`` is True when corebpf mounted
    securityfs to read it.
    """

    mode: Optional[str]
    choices: tuple[str, ...]
    source: str
    error: Optional[str] = None
    mounted_securityfs: bool = False

    @property
    def meaning(self) -> str:
        """What the mode means for eBPF users."""
        if self.mode is None:
            return "unknown"
        return LOCKDOWN_MEANING.get(self.mode, "unknown lockdown mode")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"mode": self.mode, "choices": list(self.choices), "source": self.source, "error": self.error,
                "mounted_securityfs": self.mounted_securityfs, "meaning": self.meaning}


def parse_lockdown(text: str) -> tuple[Optional[str], tuple[str, ...]]:
    """``"none [integrity] confidentiality"`` -> ``("integrity", ("none", "integrity", "confidentiality"))``."""
    mode = None
    choices = []
    for word in text.split():
        name = word.strip("[]")
        choices.append(name)
        if word.startswith("[") and word.endswith("]"):
            mode = name
    return mode, tuple(choices)


def read_lockdown(mount: bool = True) -> Lockdown:
    """Read the lockdown mode; mounts securityfs first when it is missing and ``mount`` allows."""
    from .mounts import ensure_mounted, find_mount  # mounts imports nothing of ours: no cycle

    mounted = False
    fs = find_mount("securityfs")
    if fs is None and mount:
        try:
            ensure_mounted("securityfs")
            mounted = True
            fs = find_mount("securityfs")
        except Exception as exc:  # NodeError: we report, never raise
            return Lockdown(None, (), "/sys/kernel/security/lockdown", f"securityfs not mounted: {exc}")
    base = fs.mount_point if fs is not None else "/sys/kernel/security"
    path = f"{base}/lockdown"
    text = read_text(path, 4096)
    if text.value is None:
        err = text.error or ""
        if fs is None:
            err += " (securityfs is not mounted; run as root or mount -t securityfs securityfs /sys/kernel/security)"
        elif "No such file" in err:
            err += " (the lockdown LSM is not built in: CONFIG_SECURITY_LOCKDOWN_LSM)"
        return Lockdown(None, (), path, err, mounted)
    mode, choices = parse_lockdown(text.value)
    return Lockdown(mode, choices, path, None if mode else f"{path}: unexpected text {text.value.strip()!r}", mounted)
