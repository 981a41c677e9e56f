"""Parsers of host facts, on sample texts (no kernel needed)."""

from __future__ import annotations

import gzip

import pytest

from corebpf.node import caps, kconfig, lockdown, mounts, sandbox
from corebpf.node.kernel import parse_release

KCONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
#
CONFIG_BPF=y
CONFIG_BPF_SYSCALL=y
CONFIG_BPF_JIT=y
# CONFIG_KPROBES is not set
CONFIG_NET_CLS_BPF=m
CONFIG_HZ=250
CONFIG_LSM="landlock,lockdown,bpf"
CONFIG_DEFAULT_HOSTNAME="say \\"hi\\""
garbage line
"""


def test_parse_kconfig_values() -> None:
    opts = kconfig.parse_kconfig(KCONFIG)
    assert opts["BPF_SYSCALL"] == "y"
    assert opts["KPROBES"] == "n"
    assert opts["NET_CLS_BPF"] == "m"
    assert opts["HZ"] == "250"
    assert opts["LSM"] == "landlock,lockdown,bpf"
    assert opts["DEFAULT_HOSTNAME"] == 'say "hi"'
    assert "garbage" not in " ".join(opts)


def test_kconfig_enabled_and_bpf_options(tmp_path) -> None:
    path = tmp_path / "config.gz"
    path.write_bytes(gzip.compress(KCONFIG.encode()))
    cfg = kconfig.load_kconfig([str(tmp_path / "missing"), str(path)])
    assert cfg.available and cfg.source == str(path)
    assert cfg.enabled("BPF_SYSCALL") is True
    assert cfg.enabled("CONFIG_NET_CLS_BPF") is True  # prefix accepted, =m counts
    assert cfg.enabled("KPROBES") is False
    assert cfg.enabled("NEVER_HEARD_OF") is False
    opts = cfg.bpf_options()
    assert opts["KPROBES"] == "n" and opts["BPF_JIT"] == "y" and set(opts) == set(kconfig.BPF_OPTIONS)


def test_kconfig_unreadable_is_reported_not_raised(tmp_path) -> None:
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x1f\x8b" + b"\0" * 20)  # gzip magic, broken stream
    cfg = kconfig.load_kconfig([str(tmp_path / "nope"), str(bad)])
    assert not cfg.available
    assert "nope" in (cfg.error or "") and "bad.gz" in (cfg.error or "")
    assert cfg.enabled("BPF_SYSCALL") is None
    assert all(v is None for v in cfg.bpf_options().values())


STATUS = """\
Name:\tpython3
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
"""


def test_status_caps_decoded_by_name() -> None:
    c = caps.from_status_text(STATUS)
    assert c.effective is not None
    assert {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"} <= c.effective
    assert "CAP_SYS_RESOURCE" not in c.effective  # bit 24 is clear in 0x1fffeffffff
    assert c.has("CAP_SYS_RESOURCE") is False
    assert c.missing_for_bpf() == []
    assert c.bpf_view()["CAP_SYS_RESOURCE"] is False


def test_status_caps_unprivileged() -> None:
    c = caps.from_status_text(STATUS.replace("000001fffeffffff", "0000000000000000"))
    assert c.effective == frozenset()
    assert c.missing_for_bpf() == ["CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"]
    only_bpf = caps.from_status_text(f"CapEff:\t{1 << 39:016x}\n")
    assert only_bpf.missing_for_bpf(tracing=False, networking=False) == []


def test_status_without_caps_line() -> None:
    c = caps.from_status_text("Name: x\n")
    assert c.effective is None and c.error and c.has("CAP_BPF") is None


def test_decode_unknown_bits() -> None:
    assert caps.decode((1 << 63) | 1) == {"CAP_CHOWN", "CAP_63"}


@pytest.mark.parametrize("text,mode", [
    ("none [integrity] confidentiality\n", "integrity"),
    ("[none] integrity confidentiality\n", "none"),
    ("none integrity [confidentiality]", "confidentiality"),
    ("none integrity confidentiality", None),
    ("", None),
])
def test_parse_lockdown(text: str, mode: str) -> None:
    got, choices = lockdown.parse_lockdown(text)
    assert got == mode
    if text:
        assert choices == ("none", "integrity", "confidentiality")


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 23 0:39 / /sys/fs/bpf rw,relatime shared:5 - bpf bpf rw
43 23 0:40 / /tmp/my\040bpf rw,relatime - bpf bpf rw,mode=700
44 23 0:41 / /sys/kernel/tracing rw,nosuid master:3 - tracefs tracefs rw
broken line
"""


def test_parse_mountinfo() -> None:
    table = mounts.parse_mountinfo(MOUNTINFO)
    assert len(table) == 7
    bpf = mounts.find_mounts("bpffs", table)
    assert [m.mount_point for m in bpf] == ["/sys/fs/bpf", "/tmp/my bpf"]  # \040 unescaped
    assert mounts.find_mount("bpffs", table).mount_point == "/sys/fs/bpf"  # type: ignore[union-attr]
    assert mounts.find_mount("cgroup2", table).mount_point == "/sys/fs/cgroup/unified"  # type: ignore[union-attr]
    assert mounts.find_mount("securityfs", table) is None
    tr = mounts.find_mount("tracefs", table)
    assert tr is not None and tr.options == "rw,nosuid" and tr.fs_type == "tracefs"


def test_ensure_mounted_unknown_kind() -> None:
    from corebpf.errors import NodeError

    with pytest.raises(NodeError, match="unknown filesystem kind"):
        mounts.ensure_mounted("nfs")


def _detect(**kw):
    base = dict(dmi={}, cpuinfo="flags\t\t: fpu vme\n", pid1_cgroup="0::/\n", files={}, env={})
    base.update(kw)
    return sandbox.detect_from(**base)


def test_sandbox_bare_metal() -> None:
    info = _detect(pid_ns_inode=sandbox.INIT_PID_NS_INODE)
    assert info.vm is None and info.container is None and info.sandbox is None and info.evidence == ()


def test_sandbox_firecracker_in_docker() -> None:
    info = _detect(cpuinfo="flags\t\t: fpu vme hypervisor lm\n", files={"/.dockerenv": True},
                   cmdline="console=ttyS0 -- --firecracker-init", release="6.18.44-fc-v782")
    assert info.vm == "firecracker"  # a named hypervisor wins over the anonymous CPU flag
    assert info.container == "docker"
    sources = {e.source for e in info.evidence}
    assert {"/proc/cpuinfo", "/proc/cmdline", "uname(2)", "/.dockerenv"} <= sources


def test_sandbox_kvm_kubernetes_podman() -> None:
    info = _detect(dmi={"sys_vendor": "QEMU", "product_name": "Standard PC"},
                   pid1_cgroup="0::/kubepods/besteffort/pod123/abc\n", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
                   files={"/run/.containerenv": True})
    assert info.vm == "qemu"
    assert info.container == "kubernetes"  # two pieces of evidence against one for podman
    assert any(e.name == "podman" for e in info.evidence)


def test_sandbox_pid_namespace_and_gvisor() -> None:
    info = _detect(pid_ns_inode=4026532200, proc_version="Linux version 4.4.0 gVisor")
    assert info.container == "unknown"
    assert info.sandbox == "gvisor"
    assert "pid namespace" in info.evidence[0].detail


def test_parse_release() -> None:
    assert parse_release("6.18.44-fc-v782") == (6, 18, 44)
    assert parse_release("5.10") == (5, 10, 0)
    assert parse_release("weird") == (0, 0, 0)
