"""Kernel images: bzImage/vmlinuz -> ELF vmlinux -> raw ``.BTF``, without booting anything.

An x86 bzImage is real-mode setup code followed by a small decompressor and the compressed vmlinux
(``payload_offset``/``payload_length`` in the boot protocol header, protocol >= 2.08). The payload may be
gzip, xz, lzma, bzip2, zstd or lz4 (legacy frame); zstd and lz4 are decompressed by the ``zstd``/``lz4``
tools, the others by the standard library. Images without a usable header (or of other architectures) are
scanned for compression magics the way the kernel's ``scripts/extract-vmlinux`` does, keeping the first
candidate that decompresses to an ELF file.
"""

from __future__ import annotations

import bz2
import lzma
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import KernelError

__all__ = ["BootHeader", "read_boot_header", "extract_vmlinux", "extract_btf", "image_release", "MAX_VMLINUX"]

#: Refuse to decompress more than this (a Debian vmlinux is ~60 MiB; allyesconfig ~600 MiB).
MAX_VMLINUX = 1 << 30

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

_ELF_MAGIC = b"\x7fELF"
_BTF_MAGICS = (b"\x9f\xeb", b"\xeb\x9f")


@dataclass(frozen=True)
class BootHeader:
    """The fields of the x86 boot protocol header that locate the compressed kernel."""

    protocol: int          # e.g. 0x020f
    setup_sects: int
    payload_offset: int    # from the start of the file
    payload_length: int
    kernel_version: str    # "6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP ..."

    @property
    def release(self) -> str:
        """``uname -r`` of this kernel (first word of the version string), "" if unknown."""
        return self.kernel_version.split(" ", 1)[0] if self.kernel_version else ""


def _load(image: ImageInput, what: str) -> tuple[bytes, str]:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), "<bytes>"
    path = Path(image)
    try:
        with open(path, "rb") as f:
            return f.read(), str(path)
    except OSError as e:
        raise KernelError(f"cannot read {what} {path}: {e.strerror or e}") from e


def read_boot_header(data: bytes) -> Optional[BootHeader]:
    """The bzImage boot header of ``data``, or None if it is not an x86 bzImage (protocol >= 2.08)."""
    if len(data) < 0x250 or data[0x202:0x206] != b"HdrS":
        return None
    protocol = struct.unpack_from("<H", data, 0x206)[0]
    if protocol < 0x0208:
        return None
    setup_sects = data[0x1F1] or 4
    start = (setup_sects + 1) * 512
    payload_offset, payload_length = struct.unpack_from("<II", data, 0x248)
    version = ""
    ver_off = struct.unpack_from("<H", data, 0x20E)[0]
    if ver_off:
        pos = ver_off + 0x200
        end = data.find(b"\0", pos, pos + 256)
        if end > pos:
            version = data[pos:end].decode("ascii", "replace")
    return BootHeader(protocol, setup_sects, start + payload_offset, payload_length, version)


def image_release(image: ImageInput) -> str:
    """``uname -r`` of a bzImage from its boot header ("" when the image does not say)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        head = bytes(image[:0x1000])
    else:
        try:
            with open(image, "rb") as f:
                head = f.read(0x1000)
        except OSError as e:
            raise KernelError(f"cannot read kernel image {image}: {e.strerror or e}") from e
    hdr = read_boot_header(head + b"\0" * max(0, 0x250 - len(head)))
    return hdr.release if hdr else ""


# -- decompressors --------------------------------------------------------------------------------

def _stream(dec_factory: Callable[[], object], data: bytes) -> bytes:
    dec = dec_factory()
    out = dec.decompress(data, max_length=MAX_VMLINUX + 1)  # type: ignore[attr-defined]
    if len(out) > MAX_VMLINUX:
        raise KernelError(f"the compressed kernel expands to more than {MAX_VMLINUX} bytes; refusing")
    return out


def _gzip(data: bytes) -> bytes:
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = dec.decompress(data, MAX_VMLINUX + 1)
    if len(out) > MAX_VMLINUX:
        raise KernelError(f"the compressed kernel expands to more than {MAX_VMLINUX} bytes; refusing")
    return out


def _xz(data: bytes) -> bytes:
    return _stream(lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ), data)


def _lzma(data: bytes) -> bytes:
    return _stream(lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE), data)


def _bzip2(data: bytes) -> bytes:
    return _stream(bz2.BZ2Decompressor, data)


def _tool(name: str, args: list[str], data: bytes) -> bytes:
    """Decompress with an external tool; its output counts even if it complains about trailing bytes
    (the kernel appends the decompressed size after zstd/lz4 payloads)."""
    exe = shutil.which(name)
    if exe is None:
        raise KernelError(f"this kernel image is {name}-compressed and the `{name}` tool is missing; "
                          f"install it (apt-get install {name})")
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run([exe, *args], input=data, stdout=out, stderr=subprocess.PIPE, timeout=300)
        except subprocess.TimeoutExpired as e:
            raise KernelError(f"`{name}` took more than 300 s to decompress the kernel image") from e
        size = out.seek(0, os.SEEK_END)
        if size > MAX_VMLINUX:
            raise KernelError(f"the compressed kernel expands to more than {MAX_VMLINUX} bytes; refusing")
        out.seek(0)
        result = out.read()
    if not result and proc.returncode != 0:
        raise KernelError(f"`{name}` failed: {proc.stderr.decode(errors='replace').strip()}")
    return result


def _zstd(data: bytes) -> bytes:
    return _tool("zstd", ["-d", "-c", "-q"], data)


def _lz4(data: bytes) -> bytes:
    return _tool("lz4", ["-d", "-c", "-q"], data)


#: magic -> (format name, decompressor); order matters for the scan (strong magics first).
_FORMATS: list[tuple[bytes, str, Callable[[bytes], bytes]]] = [
    (b"\x1f\x8b\x08", "gzip", _gzip),
    (b"\xfd7zXZ\x00", "xz", _xz),
    (b"\x28\xb5\x2f\xfd", "zstd", _zstd),
    (b"\x02\x21\x4c\x18", "lz4", _lz4),
    (b"BZh", "bzip2", _bzip2),
    (b"\x5d\x00\x00", "lzma", _lzma),
]
_LZO_MAGIC = b"\x89LZO"


def _try(data: bytes) -> Optional[bytes]:
    """Decompress ``data`` if it starts with a known magic and yields an ELF file."""
    for magic, _name, fn in _FORMATS:
        if data.startswith(magic):
            try:
                out = fn(data)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
                return None
            return out if out.startswith(_ELF_MAGIC) else None
    return None


def _format_of(data: bytes) -> str:
    for magic, name, _fn in _FORMATS:
        if data.startswith(magic):
            return name
    return "lzo" if data.startswith(_LZO_MAGIC) else "unknown"


def extract_vmlinux(image: ImageInput) -> bytes:
    """The ELF ``vmlinux`` inside a kernel image (bzImage/vmlinuz), or the input itself if it already is
    an ELF file. Raises :class:`KernelError` for a truncated, corrupt or unsupported image."""
    data, source = _load(image, "kernel image")
    if data.startswith(_ELF_MAGIC):
        return data
    hdr = read_boot_header(data)
    if hdr is not None:
        end = hdr.payload_offset + hdr.payload_length
        if end > len(data):
            raise KernelError(f"{source}: truncated kernel image: the compressed kernel should end at byte "
                              f"{end} but the file has {len(data)} bytes (re-download it)")
        payload = data[hdr.payload_offset:end]
        fmt = _format_of(payload)
        if fmt == "lzo":
            raise KernelError(f"{source}: LZO-compressed kernels are not supported (no decompressor)")
        out = _try(payload)
        if out is not None:
            return out
        if fmt != "unknown":
            raise KernelError(f"{source}: corrupt kernel image: its {fmt} payload does not decompress to "
                              f"an ELF vmlinux")
    # No usable header: scan for every compression magic, as scripts/extract-vmlinux does.
    for magic, _name, _fn in _FORMATS:
        pos = data.find(magic)
        while pos != -1:
            out = _try(data[pos:])
            if out is not None:
                return out
            pos = data.find(magic, pos + 1)
    what = "bzImage" if hdr is not None else "kernel image"
    raise KernelError(f"{source}: no compressed vmlinux found in this {what} (corrupt or truncated file, "
                      f"or an unsupported compression)")


def extract_btf(image: ImageInput) -> bytes:
    """Raw BTF (the ``.BTF`` section) of a kernel: from a vmlinuz/bzImage, a vmlinux ELF, or raw BTF
    itself. Raises :class:`KernelError` when the kernel was built without ``CONFIG_DEBUG_INFO_BTF``."""
    from ..btf.archive import elf_section
    from ..errors import BTFError

    data, source = _load(image, "kernel image")
    if data[:2] in _BTF_MAGICS:
        return data
    vmlinux = extract_vmlinux(data)
    try:
        btf = elf_section(vmlinux, ".BTF", source=f"{source} (vmlinux)")
    except BTFError as e:
        raise KernelError(f"{source}: the decompressed vmlinux is not a valid ELF file: {e}") from e
    if not btf:
        raise KernelError(f"{source}: this kernel has no .BTF section (built without "
                          f"CONFIG_DEBUG_INFO_BTF); use a BTF file from BTFHub or `corebpf btf minimize`")
    return btf
