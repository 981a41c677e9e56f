"""Shared test setup.

Tests under ``tests/kernel/`` talk to the real kernel and are marked ``kernel``. They skip (with
the reason) only when a kernel feature is missing. When bpf() works on this machine and every
kernel test was skipped, the run fails: a green run must mean the kernel was really exercised.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corebpf._sys import bpf_syscall_works

KERNEL_DIR = Path(__file__).parent / "kernel"
BPF_WORKS = os.geteuid() == 0 and bpf_syscall_works()

_kernel_outcomes = {"passed": 0, "skipped": 0, "failed": 0}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if KERNEL_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(autouse=True)
def _needs_bpf(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("kernel") and not BPF_WORKS:
        pytest.skip("bpf() is not usable here (needs root and CONFIG_BPF_SYSCALL)")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "kernel" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _kernel_outcomes[report.outcome] = _kernel_outcomes.get(report.outcome, 0) + 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ran_kernel = _kernel_outcomes["passed"] + _kernel_outcomes["failed"]
    if BPF_WORKS and _kernel_outcomes["skipped"] and not ran_kernel:
        session.config.stash[_all_skipped_key] = True
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_all_skipped_key = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if config.stash.get(_all_skipped_key, False):
        terminalreporter.write_line(
            "FAILED: bpf() works on this machine but every kernel test was skipped", red=True)


@pytest.fixture(scope="module")
def bpffs() -> Iterator[str]:
    """A fresh directory in a bpffs: inside the mounted one, or in one mounted for the test."""
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[2] == "bpf"]
    if mounts:
        path = tempfile.mkdtemp(prefix="corebpf-test-", dir=mounts[0])
        yield path
        os.rmdir(path)
        return
    path = tempfile.mkdtemp(prefix="corebpf-bpffs-")
    if subprocess.run(["mount", "-t", "bpf", "bpf", path], capture_output=True).returncode:
        pytest.skip("no bpffs mounted and mounting one failed")
    yield path
    subprocess.run(["umount", path], check=False)
    os.rmdir(path)
