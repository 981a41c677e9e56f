"""Where BTF comes from: raw files, ELF ``.BTF`` sections, BTFHub ``.btf.tar.xz`` archives.

The format is told by the first bytes, not by the file name: ``0xeb9f`` (either byte order) is raw
BTF, ``\\x7fELF`` an ELF object or vmlinux image, ``\\xfd7zXZ`` xz (BTFHub ships one ``<release>.btf``
in a ``.tar.xz``), ``ustar`` at byte 257 a plain tar.
"""

from __future__ import annotations

import io
import lzma
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import BTFError

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = ["open_btf_file", "read_file", "elf_section", "unpack_archive", "extract_btf", "MAX_DECOMPRESSED"]

#: Refuse archives that decompress to more than this (vmlinux BTF is ~5-10 MiB).
MAX_DECOMPRESSED = 1 << 30

_XZ_MAGIC = b"\xfd7zXZ\x00"


def read_file(path: Path) -> bytes:
    """The whole file (works for sysfs files that report a size but read in pages)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BTFError(f"cannot read BTF from {path}: {e.strerror or e}") from e


def elf_section(data: bytes, name: str, *, source: str = "<elf>") -> Optional[bytes]:
    """Contents of ELF section ``name`` (None if absent); raises :class:`BTFError` for a broken ELF."""
    from elftools.common.exceptions import ELFError as PyELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        sec = elf.get_section_by_name(name)
        if sec is None:
            return None
        if sec["sh_type"] == "SHT_NOBITS":
            return None
        off, size = sec["sh_offset"], sec["sh_size"]
        if off + size > len(data):
            raise BTFError(f"{source}: ELF section {name} at offset {off} ({size} bytes) runs past the file end")
        return data[off:off + size]
    except (PyELFError, ValueError, KeyError, IndexError, EOFError) as e:  # pyelftools' own failures
        if isinstance(e, BTFError):
            raise
        raise BTFError(f"{source}: malformed ELF file: {e}") from e


def _xz_decompress(data: bytes, source: str) -> bytes:
    dec = lzma.LZMADecompressor()
    try:
        out = dec.decompress(data, max_length=MAX_DECOMPRESSED + 1)
    except lzma.LZMAError as e:
        raise BTFError(f"{source}: broken xz data: {e}") from e
    if len(out) > MAX_DECOMPRESSED:
        raise BTFError(f"{source}: decompresses to more than {MAX_DECOMPRESSED} bytes; refusing")
    return out


def unpack_archive(data: bytes, source: str = "<archive>") -> bytes:
    """The BTF inside an xz and/or tar archive (a member named ``*.btf``, else the largest file)."""
    if data.startswith(_XZ_MAGIC):
        data = _xz_decompress(data, source)
    if len(data) > 262 and data[257:262] == b"ustar":
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                files = [m for m in tar.getmembers() if m.isfile()]
                if not files:
                    raise BTFError(f"{source}: archive holds no file")
                btfs = [m for m in files if m.name.endswith(".btf")] or files
                member = max(btfs, key=lambda m: m.size)
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
        except tarfile.TarError as e:
            raise BTFError(f"{source}: broken tar archive: {e}") from e
    return data


#: ELF files smaller than this are parsed directly (BPF objects); larger ones (vmlinux images) go
#: through the index cache like raw BTF and BTFHub archives do.
CACHE_MIN_ELF_SIZE = 1 << 20


def _sniff(path: Path) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            head = f.read(262)
            return head, os.fstat(f.fileno()).st_size
    except OSError as e:
        raise BTFError(f"cannot read BTF from {path}: {e.strerror or e}") from e


def _is_archive(head: bytes) -> bool:
    return head.startswith(_XZ_MAGIC) or (len(head) > 261 and head[257:262] == b"ustar")


def extract_btf(data: bytes, source: str) -> bytes:
    """The raw BTF blob inside a file's bytes: raw BTF as is, an ELF's ``.BTF``, an archive's member."""
    if data[:2] in (b"\x9f\xeb", b"\xeb\x9f"):
        return data
    if data[:4] == b"\x7fELF":
        sec = elf_section(data, ".BTF", source=source)
        if sec is None:
            raise BTFError(f"{source}: ELF file has no .BTF section (built without BTF? "
                           "vmlinux needs CONFIG_DEBUG_INFO_BTF, objects clang -g)")
        return sec
    if _is_archive(data[:262]):
        inner = unpack_archive(data, source)
        if inner[:4] == b"\x7fELF":
            sec = elf_section(inner, ".BTF", source=source)
            if sec is None:
                raise BTFError(f"{source}: archived ELF file has no .BTF section")
            return sec
        return inner
    raise BTFError(f"{source}: not BTF, ELF or an xz/tar archive of BTF (starts with {data[:8].hex()})")


def open_btf_file(cls: "type[BTF]", path: Path, base: "Optional[BTF]", *, cache: bool = True) -> "BTF":
    """Open any supported BTF file (see the module docstring)."""
    source = str(path)
    if cache:
        head, size = _sniff(path)
        raw = head[:2] in (b"\x9f\xeb", b"\xeb\x9f")
        big_elf = head[:4] == b"\x7fELF" and size >= CACHE_MIN_ELF_SIZE
        if raw or big_elf or _is_archive(head):
            from .index_cache import open_cached

            return open_cached(cls, path, base, None if raw else (lambda data: extract_btf(data, source)))
    return cls(extract_btf(read_file(path), source), base, source=source)
