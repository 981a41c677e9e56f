"""Kernel images: bzImage-like blobs built here (boot header + compressed ELF) -> vmlinux -> .BTF."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from corebpf.btf.archive import elf_section
from corebpf.kernels import KernelError, extract_btf, extract_vmlinux
from corebpf.kernels.image import image_release, read_boot_header

CORPUS = Path(__file__).parent.parent / "corpus"
#: A real ELF file with a .BTF section stands in for vmlinux.
ELF = (CORPUS / "raw_tp.bpf.o").read_bytes()
BTF = elf_section(ELF, ".BTF")
VERSION = "6.1.0-99-amd64 (test@example) #1 SMP PREEMPT_DYNAMIC"


def make_bzimage(payload: bytes, *, setup_sects: int = 2, protocol: int = 0x020F,
                 declared_length: int | None = None, version: str = VERSION) -> bytes:
    """A blob shaped like an x86 bzImage: setup sectors with the boot header, then a stub
    "decompressor" and the payload at payload_offset."""
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, protocol)
    ver_off = 0x100  # kernel_version is relative to 0x200 (and inside the setup sectors)
    setup[ver_off + 0x200:ver_off + 0x200 + len(version) + 1] = version.encode() + b"\0"
    struct.pack_into("<H", setup, 0x20E, ver_off)
    stub = b"\x90" * 300  # the decompressor code in a real image
    struct.pack_into("<II", setup, 0x248, len(stub),
                     len(payload) if declared_length is None else declared_length)
    return bytes(setup) + stub + payload + b"\0" * 64


COMPRESSORS = {
    "gzip": lambda d: gzip.compress(d),
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "bzip2": lambda d: bz2.compress(d),
}


def _zstd(data: bytes) -> bytes:
    if shutil.which("zstd") is None:
        pytest.skip("zstd tool not installed")
    # The kernel appends the decompressed size after the zstd frame: so do we.
    out = subprocess.run(["zstd", "-c", "-q"], input=data, capture_output=True, check=True).stdout
    return out + struct.pack("<I", len(data))


@pytest.mark.parametrize("fmt", sorted(COMPRESSORS) + ["zstd"])
def test_extract_vmlinux_from_bzimage(fmt: str, tmp_path: Path) -> None:
    payload = _zstd(ELF) if fmt == "zstd" else COMPRESSORS[fmt](ELF)
    image = tmp_path / "vmlinuz"
    image.write_bytes(make_bzimage(payload))
    assert extract_vmlinux(image) == ELF
    assert extract_btf(image) == BTF


def test_boot_header_fields() -> None:
    blob = make_bzimage(gzip.compress(ELF))
    hdr = read_boot_header(blob)
    assert hdr is not None
    assert hdr.protocol == 0x020F and hdr.setup_sects == 2
    assert blob[hdr.payload_offset:hdr.payload_offset + 3] == b"\x1f\x8b\x08"
    assert hdr.release == "6.1.0-99-amd64"
    assert image_release(blob) == "6.1.0-99-amd64"


def test_headerless_image_found_by_magic_scan() -> None:
    # No boot header (another architecture's Image.gz wrapper, say): junk, then the payload.
    blob = b"\x00junk\x1f\x8b" * 100 + COMPRESSORS["xz"](ELF) + b"trailer"
    assert read_boot_header(blob) is None
    assert extract_vmlinux(blob) == ELF


def test_vmlinux_and_raw_btf_pass_through() -> None:
    assert extract_vmlinux(ELF) == ELF
    assert extract_btf(ELF) == BTF
    assert extract_btf(BTF) == BTF


def test_truncated_image_is_a_clear_error(tmp_path: Path) -> None:
    blob = make_bzimage(gzip.compress(ELF))
    image = tmp_path / "vmlinuz"
    image.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(KernelError, match="truncated kernel image"):
        extract_vmlinux(image)


def test_corrupt_payload_is_a_clear_error() -> None:
    payload = bytearray(COMPRESSORS["xz"](ELF))
    for i in range(40, len(payload) - 40, 7):
        payload[i] ^= 0xA5
    with pytest.raises(KernelError, match="corrupt kernel image: its xz payload"):
        extract_vmlinux(make_bzimage(bytes(payload)))


def test_payload_that_is_not_elf_is_refused() -> None:
    with pytest.raises(KernelError, match="does not decompress to an ELF vmlinux"):
        extract_vmlinux(make_bzimage(gzip.compress(b"not an elf file" * 100)))


def test_garbage_is_refused() -> None:
    with pytest.raises(KernelError, match="no compressed vmlinux found"):
        extract_vmlinux(b"\x00\x01garbage" * 1000)
    with pytest.raises(KernelError, match="no compressed vmlinux found"):
        extract_vmlinux(b"")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="cannot read kernel image"):
        extract_vmlinux(tmp_path / "nope")


def test_kernel_without_btf(tmp_path: Path) -> None:
    # An ELF file with no .BTF section: a kernel built without CONFIG_DEBUG_INFO_BTF.
    no_btf = Path(shutil.which("true") or "/bin/true").read_bytes()
    with pytest.raises(KernelError, match="no .BTF section"):
        extract_btf(make_bzimage(gzip.compress(no_btf)))


def test_lzo_is_named() -> None:
    with pytest.raises(KernelError, match="LZO"):
        extract_vmlinux(make_bzimage(b"\x89LZO\x00" + b"\x00" * 100))
