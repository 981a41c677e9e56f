"""``corebpf vmtest`` for real: Debian kernels booted in QEMU (TCG here), good and bad input.

Each boot costs 30-90 s under TCG on 2 cores: the normal suite boots once; the slow cases (exit codes
through the CLI on 5.10, a hanging command, a kernel that does not boot) run in the kernel matrix job.
Skipped inside a vmtest guest (no nested QEMU) and when QEMU, busybox-static or the Debian archive are
unavailable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corebpf.kernels import KernelError, KernelImage, resolve_kernel
from corebpf.kernels.vm import VMConfig, run_in_vm

REPO = Path(__file__).resolve().parents[2]
COREBPF = Path(sys.executable).with_name("corebpf")

if os.environ.get("COREBPF_VMTEST"):
    pytest.skip("already inside a vmtest guest (no nested QEMU)", allow_module_level=True)
if shutil.which("qemu-system-x86_64") is None:
    pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)", allow_module_level=True)
if not any(Path(p).is_file() for p in ("/bin/busybox", "/usr/bin/busybox")):
    pytest.skip("busybox is not installed (apt-get install busybox-static)", allow_module_level=True)


#: The slowest cases (a boot each, 1-4 min under TCG) run in the kernel matrix job (tests/matrix/run.sh
#: sets COREBPF_VM_TESTS=all) rather than in every run of the normal suite.
slow_vm = pytest.mark.skipif(os.environ.get("COREBPF_VM_TESTS") != "all",
                             reason="slow VM test: runs in the kernel matrix job (or set COREBPF_VM_TESTS=all)")


def _kernel(spec: str) -> KernelImage:
    try:
        return resolve_kernel(spec)
    except KernelError as e:
        if "cannot fetch the package lists" in str(e):
            pytest.skip(f"the Debian archive is unreachable and {spec} is not cached: {e}")
        raise


def _our_qemus() -> list[int]:
    """QEMU processes whose parent is this test process (there must be none between tests)."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True).stdout
    return [int(p) for p, pp, comm in (line.split(None, 2) for line in out.splitlines())
            if int(pp) == os.getpid() and comm.startswith("qemu")]


def _our_workdirs() -> list[Path]:
    return list(Path("/tmp").glob(f"corebpf-vmtest-{os.getpid()}-*"))


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    assert _our_qemus() == []
    assert _our_workdirs() == []


def test_boot_runs_a_command_with_bpf_mounts_and_overlay() -> None:
    kernel = _kernel("debian:6.1")
    marker = REPO / "tests" / ".vmtest-overlay-probe"
    script = (
        "uname -r; "
        "corebpf prog list --json > /dev/null && echo BPF-OK; "
        "grep -E ' (bpf|tracefs|debugfs|securityfs|9p|overlay) ' /proc/mounts | cut -d' ' -f3 | sort -u | tr '\\n' ' '; echo; "
        f"touch {marker} && echo WROTE-REPO; "
        "echo from-guest > $COREBPF_VMTEST_SCRATCH/out && echo WROTE-SCRATCH; "
        "echo kernel=$COREBPF_VMTEST_KERNEL cwd=$(pwd)"
    )
    result = run_in_vm(kernel, script, config=VMConfig(timeout=600, cwd=str(REPO)))
    assert result.status == "ok", (result.reason, result.output, result.console_tail)
    assert result.exit_code == 0 and result.boot_seconds is not None
    lines = result.output.splitlines()
    assert lines[0] == kernel.release
    assert "BPF-OK" in lines
    mounts = set(lines[2].split())
    assert {"bpf", "tracefs", "debugfs", "securityfs", "9p"} <= mounts, mounts
    assert "WROTE-REPO" in lines and not marker.exists()  # the guest writes into its overlay only
    assert "WROTE-SCRATCH" in lines
    assert f"kernel=debian:6.1 cwd={REPO}" in lines


@slow_vm
def test_cli_reports_the_exit_code_per_kernel() -> None:
    _kernel("debian:5.10")
    start = time.monotonic()
    proc = subprocess.run([str(COREBPF), "vmtest", "-k", "debian:5.10", "--timeout", "600", "--json", "--",
                           "sh", "-c", "echo hello from $(uname -r); exit 7"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 1, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["kernel"] == "debian:5.10" and result["status"] == "failed" and result["exit_code"] == 7
    assert result["output"].startswith("hello from 5.10.")
    assert "hello from 5.10." in proc.stderr  # streamed live (to stderr with --json)
    assert time.monotonic() - start < 900


@slow_vm
def test_hanging_command_is_killed_at_the_deadline() -> None:
    kernel = _kernel("debian:6.1")
    start = time.monotonic()
    result = run_in_vm(kernel, "echo started; sleep 100000", config=VMConfig(timeout=150, boot_timeout=140))
    elapsed = time.monotonic() - start
    assert result.status == "timeout", (result.reason, result.console_tail)
    assert "timed out after 150 s" in result.reason
    assert result.exit_code is None
    assert elapsed < 150 + 30


@slow_vm
def test_kernel_that_does_not_boot(tmp_path: Path) -> None:
    kernel = _kernel("debian:6.1")
    data = bytearray(kernel.vmlinuz.read_bytes())
    from corebpf.kernels.image import read_boot_header

    hdr = read_boot_header(bytes(data))
    assert hdr is not None
    mid = hdr.payload_offset + hdr.payload_length // 2
    data[mid:mid + 4096] = bytes(b ^ 0x5A for b in data[mid:mid + 4096])  # same size, corrupt payload
    broken = tmp_path / "vmlinuz-corrupt"
    broken.write_bytes(bytes(data))
    image = KernelImage(vmlinuz=broken, release=kernel.release, spec=str(broken), modules_dir=kernel.modules_dir)
    start = time.monotonic()
    result = run_in_vm(image, "true", config=VMConfig(timeout=300, boot_timeout=240))
    assert result.status == "boot-failed", (result.status, result.reason, result.console_tail)
    assert "decompressor halted" in result.reason
    assert "System halted" in result.console_tail
    assert time.monotonic() - start < 120  # noticed on the console, not at the boot deadline


def test_truncated_image_is_refused_before_booting(tmp_path: Path) -> None:
    kernel = _kernel("debian:6.1")
    broken = tmp_path / "vmlinuz-truncated"
    broken.write_bytes(kernel.vmlinuz.read_bytes()[:1 << 20])
    with pytest.raises(KernelError, match="truncated kernel image"):
        run_in_vm(resolve_kernel(str(broken)), "true")


def test_missing_package_is_a_clear_error() -> None:
    _kernel("debian:6.1")  # the package lists are reachable (or skip)
    with pytest.raises(KernelError, match="no Debian package 'linux-image-0.0.0-0-amd64'"):
        resolve_kernel("linux-image-0.0.0-0-amd64")


def test_kernel_btf_cli(tmp_path: Path) -> None:
    from corebpf.btf import BTF, Kind

    _kernel("debian:5.10")
    out = tmp_path / "5.10.btf"
    proc = subprocess.run([str(COREBPF), "kernel", "btf", "debian:5.10", "-o", str(out), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["release"].startswith("5.10.") and info["bytes"] == out.stat().st_size
    btf = BTF.from_file(out, cache=False)
    assert btf.find("task_struct", Kind.STRUCT).size > 1000
    assert info["types"] == len(btf)
