"""On-disk cache of full C dumps, keyed by the BTF's content, so the next ``vmlinux.h`` is a file copy.

Generating the header of a whole kernel takes most of a second in Python; a node's kernel BTF
changes only with a reboot into another kernel. An entry is the dump's text in
``<cache dir>/cdump-<key>.h``, where the key is a BLAKE2b hash of the raw BTF (and of its base for
split BTF), of the dump options and of :data:`FORMAT_VERSION` (bumped whenever the dumper's output
changes). Entries are written to a temporary file and renamed, so readers never see half an entry;
a cache that cannot be written is skipped silently.

Location, as for the BTF index cache: ``$COREBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/corebpf``, else
``~/.cache/corebpf``. Standard library only (see :mod:`corebpf.btf.c_dump_table`).
"""

from __future__ import annotations

import os

try:  # the built-in BLAKE2; hashlib would also load OpenSSL (a few MiB of RSS) for nothing
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - other Python implementations
    from hashlib import blake2b
from typing import TYPE_CHECKING, Iterable, Iterator, Optional

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

__all__ = ["FORMAT_VERSION", "cache_dir", "cache_key", "file_key", "cached_path", "load", "store", "stats"]

#: Part of every key: bump it when the dumper's output changes.
FORMAT_VERSION = 1
_CHUNK = 1 << 20

#: What the cache did in this process (for tests and the benchmark).
stats = {"hits": 0, "misses": 0, "stores": 0, "store_errors": 0}


def cache_dir() -> "Path":
    """The directory cache entries live in."""
    # imported here: a dump that does not use the cache (--no-cache) need not load pathlib
    from pathlib import Path

    env = os.environ.get("COREBPF_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "corebpf"
    return Path(os.path.expanduser("~")) / ".cache" / "corebpf"


def cache_key(blobs: Iterable[bytes], options: str = "") -> str:
    """Hex key of a dump of the BTF ``blobs`` (base first) with ``options``."""
    h = _hasher(options)
    for blob in blobs:
        h.update(blob)
        h.update(len(blob).to_bytes(8, "little"))
    return h.hexdigest()


def file_key(paths: Iterable[str], options: str = "") -> Optional[str]:
    """:func:`cache_key` of raw BTF files (base first), read in chunks so they are never all in
    memory; None when a file cannot be read or is not raw BTF (ELF, archives: not keyed here)."""
    h = _hasher(options)
    for path in paths:
        size = 0
        try:
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(_CHUNK)
                    if not chunk:
                        break
                    if size == 0 and chunk[:2] not in (b"\x9f\xeb", b"\xeb\x9f"):
                        return None
                    h.update(chunk)
                    size += len(chunk)
        except OSError:
            return None
        h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def _hasher(options: str) -> "blake2b":
    h = blake2b(digest_size=20)
    h.update(f"cdump-v{FORMAT_VERSION}|{options}|".encode())
    return h


def cached_path(key: str) -> "Path":
    """Where the entry for ``key`` lives (whether or not it exists)."""
    return cache_dir() / f"cdump-{key}.h"


def load(key: str) -> Optional[Iterator[str]]:
    """The cached dump for ``key`` in chunks, or None when there is none."""
    try:
        f = open(cached_path(key), "r", encoding="utf-8", newline="")
    except OSError:
        stats["misses"] += 1
        return None
    stats["hits"] += 1

    def chunks() -> Iterator[str]:
        with f:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    return
                yield chunk

    return chunks()


def store(key: str, chunks: Iterable[str]) -> Iterator[str]:
    """Pass ``chunks`` through, writing them to the entry for ``key``; the entry appears (by
    rename) only once every chunk went through."""
    path = cached_path(key)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        f = os.fdopen(fd, "w", encoding="utf-8", newline="")
    except OSError:
        stats["store_errors"] += 1
        yield from chunks
        return
    failed = done = False
    try:
        for chunk in chunks:
            if not failed:
                try:
                    f.write(chunk)
                except OSError:  # disk full...: the output must go on regardless
                    failed = True
            yield chunk
        done = True
    finally:
        try:
            f.close()
            if done and not failed:
                os.replace(tmp, path)
                stats["stores"] += 1
        except OSError:
            failed = True
        if failed:
            stats["store_errors"] += 1
        if not (done and not failed):
            try:
                os.unlink(tmp)
            except OSError:
                pass
