"""The initramfs: a valid newc cpio with busybox, /dev/console, the modules in order and an init that
mounts what the tests need."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from corebpf.kernels import KernelError
from corebpf.kernels.initramfs import CpioWriter, build_initramfs, find_busybox, init_script


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)); an independent reader of the format."""
    out = {}
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = fields[11], fields[6]
        name_start = pos + 110
        name = data[name_start:name_start + namesize - 1].decode()
        body = (name_start + namesize + 3) & ~3
        content = data[body:body + filesize]
        pos = (body + filesize + 3) & ~3
        if name == "TRAILER!!!":
            assert pos == len(data)
            return out
        out[name] = (fields[1], content, (fields[9], fields[10]))


def test_cpio_roundtrip() -> None:
    w = CpioWriter()
    w.add_dir("bin")
    w.add_file("bin/x", b"hello", 0o755)
    w.add_symlink("bin/sh", "busybox")
    w.add_chardev("dev/console", 5, 1)
    entries = parse_newc(w.finish())
    assert stat.S_ISDIR(entries["bin"][0])
    assert entries["bin/x"][1] == b"hello" and entries["bin/x"][0] & 0o777 == 0o755
    assert stat.S_ISLNK(entries["bin/sh"][0]) and entries["bin/sh"][1] == b"busybox"
    assert stat.S_ISCHR(entries["dev/console"][0]) and entries["dev/console"][2] == (5, 1)


def test_initramfs_contents(tmp_path: Path) -> None:
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF static busybox")
    mods = [("00-virtio.ko", b"\x7fELFa"), ("01-9pnet.ko", b"\x7fELFb")]
    entries = parse_newc(build_initramfs(busybox, mods, "6.1.0-99-amd64", have_modules_share=True))
    assert entries["bin/busybox"][1] == busybox.read_bytes()
    assert b"chroot /newroot /sbin/modprobe" in entries["bin/modprobe-newroot"][1]
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert entries["modules/00-virtio.ko"][1] == b"\x7fELFa"
    assert entries["modules/01-9pnet.ko"][1] == b"\x7fELFb"
    init = entries["init"][1].decode()
    assert entries["init"][0] & 0o111 and init.startswith("#!/bin/busybox sh")
    for needle in ("-t bpf", "-t tracefs", "-t debugfs", "-t securityfs", "-t 9p", "trans=virtio",
                   "/lib/modules/6.1.0-99-amd64", "poweroff -f", "@@vmtest: running command",
                   "ifconfig lo 127.0.0.1 up", "/proc/sys/kernel/modprobe"):
        assert needle in init, needle


def test_init_without_modules_share() -> None:
    assert "/lib/modules/" not in init_script("5.10.0-32-amd64", have_modules_share=False)


def test_find_busybox_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "busybox"
    fake.write_bytes(b"\x7fELF" + b"\0" * 100)
    monkeypatch.setenv("COREBPF_BUSYBOX", str(fake))
    assert find_busybox() == fake


def test_unreadable_busybox(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="cannot read busybox"):
        build_initramfs(tmp_path / "missing", [], "6.1")


def test_init_mounts_the_package_boot_dir() -> None:
    init = init_script("6.1.0-99-amd64", have_modules_share=False, have_boot_share=True)
    assert "kboot /newroot/boot" in init
    assert "kboot" not in init_script("6.1.0-99-amd64", have_modules_share=False)
