"""Kernel specs: Debian metadata parsing, spec resolution without the network, VM plumbing that needs
no VM (command script, kernel command line, image checks)."""

from __future__ import annotations

import gzip
import shlex
from pathlib import Path

import pytest

from corebpf.kernels import KernelError, debian_series, resolve_kernel
from corebpf.kernels.debian import DebianPackage, host_mirror, parse_depends, parse_stanzas, series_package
from corebpf.kernels.resolve import KernelImage, tree_image
from corebpf.kernels.vm import VMResult, check_image, command_script, kernel_cmdline

from test_kernels_image import ELF, make_bzimage  # same directory (rootdir-relative import)


@pytest.fixture(autouse=True)
def _private_kernel_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake kernels never land in the machine's real cache (/var/cache/corebpf/kernels)."""
    monkeypatch.setenv("COREBPF_KERNEL_CACHE", str(tmp_path / "kernel-cache"))

SHOW = """\
Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Installed-Size: 13
Depends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)
Description: Linux for 64-bit PCs (meta-package)
 This package depends on the latest Linux kernel
 and modules for use on PCs.

Package: linux-image-6.1.0-50-amd64
Version: 6.1.176-1
Installed-Size: 398221
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
"""


def test_parse_stanzas_and_depends() -> None:
    meta, real = parse_stanzas(SHOW)
    assert meta["Package"] == "linux-image-amd64" and meta["Version"] == "6.1.176-1"
    assert meta["Description"].endswith("and modules for use on PCs.")
    assert parse_depends(meta["Depends"]) == ("linux-image-6.1.0-50-amd64",)
    assert parse_depends(real["Depends"]) == ("kmod", "linux-base", "initramfs-tools")
    assert parse_depends("") == ()


def test_meta_package_detection() -> None:
    assert DebianPackage("linux-image-amd64", "6.1.176-1", "bookworm", ("linux-image-6.1.0-50-amd64",), 13).is_meta
    assert not DebianPackage("linux-image-6.1.0-50-amd64", "6.1.176-1", "bookworm", ("kmod",), 398221).is_meta


def test_series_table() -> None:
    series = debian_series()
    assert series["5.10"] == ("bullseye",) and series["6.1"] == ("bookworm",)
    assert series["6.12"][0] == "trixie"


def test_unknown_series_is_refused_without_network(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="unknown Debian kernel series '4.19'"):
        series_package("4.19", tmp_path)


def test_host_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREBPF_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://example.org/apt\nSuites: stable\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\nComponents: main\n")
    assert host_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert host_mirror(tmp_path) == "http://one.example/debian"
    monkeypatch.setenv("COREBPF_DEBIAN_MIRROR", "http://env.example/debian/")
    assert host_mirror(tmp_path) == "http://env.example/debian"


@pytest.mark.parametrize("spec, message", [
    ("", "empty kernel spec"),
    ("debian:4.19", "unknown Debian kernel series"),
    ("debian:not-a-kernel", "expected debian:<series>"),
    ("./nope/vmlinuz", "does not exist"),
    ("windows-11", "unknown kernel spec"),
])
def test_bad_specs(spec: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(KernelError, match=message):
        resolve_kernel(spec, cache=tmp_path)


def _package_tree(root: Path, release: str = "6.1.0-99-amd64", usrmerge: bool = False) -> Path:
    (root / "boot").mkdir(parents=True)
    (root / "boot" / f"vmlinuz-{release}").write_bytes(make_bzimage(gzip.compress(ELF)))
    mdir = root / ("usr/lib/modules" if usrmerge else "lib/modules") / release
    mdir.mkdir(parents=True)
    (mdir / "modules.dep").write_text("kernel/fs/9p/9p.ko:\n")
    return root


def test_tree_and_path_specs(tmp_path: Path) -> None:
    tree = _package_tree(tmp_path / "tree")
    k = resolve_kernel(str(tree), cache=tmp_path / "cache")
    assert k.release == "6.1.0-99-amd64" and k.modules_dir == tree / "lib/modules/6.1.0-99-amd64"
    assert k.root == tree and k.label == "6.1.0-99-amd64"
    # The image alone: release from the boot header, modules found next to it.
    k2 = resolve_kernel(str(k.vmlinuz), cache=tmp_path / "cache")
    assert k2.release == "6.1.0-99-amd64" and k2.modules_dir == k.modules_dir and k2.root is None
    # BTF straight from the image, cached in the tree.
    assert k.btf_bytes() == k2.btf_bytes()
    assert (tree / "vmlinux.btf").read_bytes() == k.btf_bytes()
    assert k.btf_path().read_bytes() == k.btf_bytes()


def test_usrmerged_tree(tmp_path: Path) -> None:
    tree = _package_tree(tmp_path / "tree", usrmerge=True)
    k = tree_image(tree, "debian:6.12")
    assert k.modules_dir == tree / "usr/lib/modules/6.1.0-99-amd64" and k.label == "debian:6.12"


def test_tree_without_image(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no boot/vmlinuz"):
        tree_image(tmp_path, "x")


def test_corrupt_deb_is_a_clear_error(tmp_path: Path) -> None:
    deb = tmp_path / "linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb"
    deb.write_bytes(b"!<arch>\nnot really a deb")
    with pytest.raises(KernelError, match="not a valid Debian package"):
        resolve_kernel(str(deb), cache=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "trees").glob("*"))  # nothing half-unpacked left


def test_check_image(tmp_path: Path) -> None:
    good = make_bzimage(gzip.compress(ELF))
    img = tmp_path / "vmlinuz"
    img.write_bytes(good)
    check_image(KernelImage(vmlinuz=img, release="x", spec="x"))
    img.write_bytes(good[:2000])
    with pytest.raises(KernelError, match="truncated kernel image"):
        check_image(KernelImage(vmlinuz=img, release="x", spec="x"))
    img.write_bytes(ELF)
    with pytest.raises(KernelError, match="not a bootable x86 bzImage"):
        check_image(KernelImage(vmlinuz=img, release="x", spec="x"))
    with pytest.raises(KernelError, match="cannot read kernel image"):
        check_image(KernelImage(vmlinuz=tmp_path / "missing", release="x", spec="x"))


def test_command_script_quotes() -> None:
    script = command_script(["python", "-c", "print('a b')", "$HOME"], "/work/with space",
                            {"PATH": "/v/bin:/usr/bin", "X": "it's"})
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert f"export X={shlex.quote(chr(105) + chr(116) + chr(39) + chr(115))}" in lines
    assert lines[-1] == "exec " + shlex.join(["python", "-c", "print('a b')", "$HOME"])
    assert "cd '/work/with space'" in script
    # A string is a shell command line, run as is.
    assert command_script("echo $HOME | wc -c", "/", {}).splitlines()[-1] == "echo $HOME | wc -c"


def test_kernel_cmdline() -> None:
    line = kernel_cmdline("foo=1")
    assert "console=ttyS0" in line and "panic=-1" in line and "rdinit=/init" in line
    assert line.endswith("foo=1") and ",bpf" in line


def test_result_json() -> None:
    r = VMResult(kernel="debian:6.1", release="6.1.0-50-amd64", status="failed", exit_code=3, output="x",
                 duration=1.5, boot_seconds=1.0, accel="tcg", reason="the command exited with 3")
    assert not r.ok and r.to_json()["exit_code"] == 3 and r.to_json()["status"] == "failed"
