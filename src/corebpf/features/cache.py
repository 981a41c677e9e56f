"""On-disk cache of probe results, valid for one boot of one kernel as one user with one set of
capabilities and one lockdown mode (anything that changes a probe's outcome is in the key)."""

from __future__ import annotations

import os
from typing import Any, Optional

FORMAT = 1


def cache_dir() -> str:
    """``$XDG_CACHE_HOME/corebpf`` or ``~/.cache/corebpf``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "corebpf")


def cache_key() -> str:
    """Kernel release + boot id + uid + effective capabilities + lockdown + JIT/unpriv sysctls."""
    import hashlib  # lazily: it loads OpenSSL

    from ..node.caps import capabilities
    from ..node.kernel import kernel_info
    from ..node.lockdown import read_lockdown
    from ..node.sysctl import read_sysctl

    k = kernel_info()
    parts = [str(FORMAT), k.release, k.boot_id.value or "", str(os.geteuid()),
             str(capabilities().effective_mask), str(read_lockdown(mount=False).mode),
             str(read_sysctl("kernel.unprivileged_bpf_disabled").value),
             str(read_sysctl("net.core.bpf_jit_enable").value)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def load(key: str) -> Optional[dict[str, Any]]:
    """The cached report for ``key``, or None."""
    import json

    try:
        with open(os.path.join(cache_dir(), f"features-{key}.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("cache_key") == key else None


def store(key: str, report: dict[str, Any]) -> Optional[str]:
    """Write the report atomically; returns the path, or None when the cache is not writable."""
    import json

    d = cache_dir()
    path = os.path.join(d, f"features-{key}.json")
    try:
        os.makedirs(d, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(dict(report, cache_key=key), f)
        os.replace(tmp, path)
    except OSError:
        return None
    return path
