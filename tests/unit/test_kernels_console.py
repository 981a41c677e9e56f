"""Console logs: panic, halted decompressor, init failure, warnings, progress markers."""

from __future__ import annotations

from corebpf.kernels.console import scan_console, tail

BOOTED = """\
[    0.000000] Linux version 6.1.0-50-amd64
@@vmtest: init started at 8.08
@@vmtest: root mounted (overlay=yes)
@@vmtest: running command at 11.92
"""


def test_clean_boot() -> None:
    v = scan_console(BOOTED + "@@vmtest: command exited with 0 at 20.1\r\n[   20.2] reboot: Power down\n")
    assert v.fatal is None and v.warnings == []
    assert v.booted and v.command_started
    assert v.markers[-1] == "command exited with 0 at 20.1"


def test_panic() -> None:
    v = scan_console(BOOTED + "[   30.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n"
                              "[   30.1] CPU: 0 PID: 1 Comm: init\n")
    assert v.fatal == "kernel panic: Attempted to kill init! exitcode=0x0000000b"


def test_decompressor_halt() -> None:
    v = scan_console("Decompressing Linux... \r\n\r\nXZ-compressed data is corrupt\r\n\r\n -- System halted")
    assert v.fatal is not None and "decompressor halted" in v.fatal
    assert not v.booted


def test_init_failure() -> None:
    v = scan_console("@@vmtest: init started at 1.0\n@@vmtest-fail: cannot mount the host root over 9p\n")
    assert v.fatal == "init failed: cannot mount the host root over 9p"
    assert v.booted and not v.command_started


def test_first_fatal_wins() -> None:
    v = scan_console("@@vmtest-fail: cannot set up the new root\n"
                     "Kernel panic - not syncing: Attempted to kill init!\n")
    assert v.fatal == "init failed: cannot set up the new root"


def test_warnings_do_not_fail() -> None:
    v = scan_console(BOOTED + "[ 12.0] WARNING: CPU: 1 PID: 77 at kernel/bpf/verifier.c:123 check+0x1/0x2\n"
                              "[ 13.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n")
    assert v.fatal is None
    assert len(v.warnings) == 2 and "verifier.c" in v.warnings[0]


def test_tail() -> None:
    assert tail("a\r\n\nb\nc\n", 2) == "b\nc"
    assert tail("") == ""
