"""Host facts on this machine, cross-checked against independent readings (files, shell tools)."""

from __future__ import annotations

import gzip
import os
import subprocess

import pytest

from corebpf import node
from corebpf.errors import NodeError

THIS_MACHINE = os.uname().release.startswith("6.18") and "-fc-" in os.uname().release


def test_kernel_and_kconfig() -> None:
    k = node.kernel_info()
    assert k.release == os.uname().release and k.numeric[0] >= 4
    assert k.boot_id.known and len(k.boot_id.value or "") == 36
    cfg = node.load_kconfig()
    assert cfg.available, cfg.error
    if cfg.source == "/proc/config.gz":
        with gzip.open("/proc/config.gz", "rt") as f:
            raw = f.read()
        assert ("CONFIG_BPF_SYSCALL=y" in raw) == cfg.enabled("BPF_SYSCALL")
        assert ("CONFIG_KPROBES=y" in raw) == bool(cfg.enabled("KPROBES"))
    assert cfg.enabled("BPF_SYSCALL") is True


def test_btf_info() -> None:
    b = node.btf_info()
    assert b.vmlinux_present == os.path.exists("/sys/kernel/btf/vmlinux")
    if b.vmlinux_present:
        assert b.vmlinux_size == os.stat("/sys/kernel/btf/vmlinux").st_size
    assert set(b.modules) == set(os.listdir("/sys/kernel/btf")) - {"vmlinux"}


def test_jit_and_sysctls() -> None:
    j = node.jit_state()
    with open("/proc/sys/net/core/bpf_jit_enable") as f:
        assert j.enable.value == int(f.read())
    assert j.limit.known and j.limit.source.endswith("bpf_jit_limit")
    assert node.read_sysctl("kernel.unprivileged_bpf_disabled").value in (0, 1, 2)
    bad = node.read_sysctl("kernel.no_such_sysctl")
    assert bad.value is None and "No such file" in (bad.error or "")


def test_lockdown_mounts_securityfs_and_matches_file() -> None:
    lock = node.read_lockdown(mount=True)
    assert lock.mode is not None, lock.error
    with open(lock.source) as f:
        assert f"[{lock.mode}]" in f.read()
    assert node.find_mount("securityfs") is not None
    if THIS_MACHINE:
        assert lock.mode == "integrity"
        assert "bpf_probe_write_user" in lock.meaning


def test_capabilities_as_root() -> None:
    c = node.capabilities()
    with open("/proc/self/status") as f:
        eff = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    assert c.effective_mask == eff
    assert c.has("CAP_BPF") is bool(eff >> 39 & 1)
    assert c.has("CAP_SYS_ADMIN") and c.missing_for_bpf() == []


def test_mounts_and_ensure_mounted() -> None:
    path = node.ensure_mounted("bpffs")
    assert node.find_mount("bpffs") is not None and os.path.isdir(path)
    assert node.ensure_mounted("bpffs") == path  # idempotent
    tr = node.ensure_mounted("tracefs")
    assert os.path.exists(os.path.join(tr, "events"))
    status = node.mount_status()
    assert status["bpffs"].mounted and path in status["bpffs"].paths
    out = subprocess.run(["findmnt", "-n", "-t", "bpf", "-o", "TARGET"], capture_output=True, text=True)
    if out.returncode == 0:
        assert set(out.stdout.split()) == set(status["bpffs"].paths)
    with pytest.raises(NodeError):
        node.ensure_mounted("ext9")


def test_ensure_mounted_error_without_privilege() -> None:
    code = ("from corebpf.node import mounts\n"
            "mounts.find_mount = lambda kind, table=None: None\n"
            "mounts.find_mounts = lambda kind, table=None: []\n"
            "try:\n    mounts.ensure_mounted('debugfs')\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--reuid=65534", "--regid=65534",
                          "--clear-groups", os.sys.executable, "-c", code], capture_output=True, text=True)
    assert "NodeError" in out.stdout and "CAP_SYS_ADMIN" in out.stdout and "mount -t debugfs" in out.stdout, out


def test_sandbox_detection() -> None:
    info = node.detect()
    for e in info.evidence:
        assert e.source and e.detail
    if os.path.exists("/.dockerenv"):
        assert info.container == "docker"
    if THIS_MACHINE:
        assert info.vm == "firecracker"
        out = subprocess.run(["systemd-detect-virt", "--container"], capture_output=True, text=True)
        if out.returncode == 0:
            assert out.stdout.strip() == info.container


def test_tracing_info() -> None:
    t = node.tracing_info()
    assert t.kprobe_pmu.known == os.path.exists("/sys/bus/event_source/devices/kprobe/type")
    assert t.uprobe_pmu.known == os.path.exists("/sys/bus/event_source/devices/uprobe/type")
    if THIS_MACHINE:
        assert not t.kprobes_possible


def test_facts_never_raise_and_serialise() -> None:
    import json

    f = node.facts()
    text = json.dumps(f.to_dict())
    assert '"lockdown"' in text and '"capabilities"' in text


def _in_private_mount_ns(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a private mount namespace: mounts made there never touch the host."""
    import shutil
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    return subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)


def test_ensure_mounted_really_mounts() -> None:
    code = ("import subprocess\n"
            "subprocess.run(['umount', '/sys/kernel/debug'], capture_output=True)\n"
            "from corebpf import node\n"
            "assert node.find_mount('debugfs') is None\n"
            "path = node.ensure_mounted('debugfs')\n"
            "assert node.find_mount('debugfs').mount_point == path == '/sys/kernel/debug'\n"
            "assert node.MOUNTED_BY_US == {'debugfs': path}, node.MOUNTED_BY_US\n"
            "assert node.mount_status()['debugfs'].mounted_by_corebpf\n"
            "print('ok')\n")
    out = _in_private_mount_ns(code)
    assert out.stdout.strip() == "ok", out.stderr


def test_lockdown_mounts_securityfs_when_missing() -> None:
    code = ("import subprocess\n"
            "subprocess.run(['umount', '/sys/kernel/security'], capture_output=True)\n"
            "from corebpf import node\n"
            "assert node.find_mount('securityfs') is None\n"
            "assert node.read_lockdown(mount=False).mode is None\n"
            "lock = node.read_lockdown(mount=True)\n"
            "print(lock.mode, lock.mounted_securityfs)\n")
    out = _in_private_mount_ns(code)
    mode, mounted = out.stdout.split()
    assert mounted == "True", out.stderr
    assert mode == node.read_lockdown().mode
