"""On-disk cache of a BTF file's index (and a copy of the blob), so the next process opens it for free.

A cache entry is one file holding a copy of the BTF blob (at offset 0, so the mmap is used as the
blob directly), the arrays of its :class:`TypeIndex` and a trailer with the key and checksums.
Opening through the cache costs a ``stat``, a few small ``pread``s of the source (to compute the
key), an ``mmap`` of the entry and checksums of what it holds: no parsing.

The key is cheap and content-based: size, mtime and inode of the source plus a hash of its header
and of blocks sampled across it (and the key of the base BTF for split BTF). A changed file
changes its mtime or size, or at least its sampled content. The entry records a digest of sampled
blocks of its blob copy and checksums of the whole blob and of its index arrays (sums of 64-bit
words: ~0.3 ms for vmlinux), so a damaged entry is noticed and the file is parsed again. Sources may be raw BTF, ELF files (vmlinux images) or BTFHub archives: the
entry holds the extracted BTF, so a hit skips decompression too. Entries are written by a background thread (the open does
not wait; :func:`wait` does) to a temporary file that is then renamed; a cache that cannot be
written (read-only FS, no home) is silently skipped (``stats["store_errors"]``).

Location: ``$COREBPF_CACHE_DIR``, else ``$XDG_CACHE_HOME/corebpf``, else ``~/.cache/corebpf``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..errors import BTFError
from .index import TypeIndex, add_name_keys

if TYPE_CHECKING:  # pragma: no cover
    from .reader import BTF

__all__ = ["cache_dir", "cache_key", "open_cached", "stats", "clear", "wait"]

_MAGIC = b"CBTFIDX1"
_VERSION = 4
# magic, version, flags, key (32), blob digest (32), data_len, n_types, n_odd, n_keys, blob sum,
# index sum, data_off, arrays_off
_HEAD = struct.Struct("<8sII32s32sQIIIQQQQ")
_SAMPLES = 16
_SAMPLE_SIZE = 512

#: What the cache did in this process (tests check ``hits``; nothing else depends on it).
stats = {"hits": 0, "misses": 0, "stores": 0, "store_errors": 0, "rejected": 0}


def cache_dir() -> Path:
    """The directory cache entries live in."""
    env = os.environ.get("COREBPF_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "corebpf"
    return Path(os.path.expanduser("~")) / ".cache" / "corebpf"


def _sample_offsets(size: int) -> list[int]:
    if size <= _SAMPLES * _SAMPLE_SIZE:
        return [0]
    # evenly spread, the first at 0 (the header) and the last ending exactly at the end of the file
    span = size - _SAMPLE_SIZE
    return [i * span // (_SAMPLES - 1) for i in range(_SAMPLES)]


def _digest_blocks(read, size: int) -> bytes:
    h = hashlib.blake2b(digest_size=32)
    h.update(struct.pack("<Q", size))
    for off in _sample_offsets(size):
        h.update(read(off, min(size, _SAMPLE_SIZE if size > _SAMPLES * _SAMPLE_SIZE else size)))
    return h.digest()


def _content_digest_fd(fd: int, size: int) -> bytes:
    def read(off: int, n: int) -> bytes:
        out = b""
        while len(out) < n:  # sysfs may return short reads
            chunk = os.pread(fd, n - len(out), off + len(out))
            if not chunk:
                break
            out += chunk
        return out

    return _digest_blocks(read, size)


def _content_digest_bytes(data, size: int) -> bytes:
    return _digest_blocks(lambda off, n: bytes(data[off:off + n]), size)


def cache_key(path: Path, base: "Optional[BTF]") -> tuple[bytes, int]:
    """(key, file size) of a BTF source file: stat data + sampled content (+ the base's key)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        digest = _content_digest_fd(fd, st.st_size)
    finally:
        os.close(fd)
    h = hashlib.blake2b(digest_size=32)
    h.update(struct.pack("<IQQQ", _VERSION, st.st_size, st.st_mtime_ns, st.st_ino))
    h.update(digest)
    if base is not None:
        h.update(getattr(base, "_cache_key", b"") or hashlib.blake2b(base.raw[:4096]).digest())
    return h.digest(), st.st_size


def _entry_path(path: Path, key: bytes) -> Path:
    tag = hashlib.blake2b(str(path.resolve()).encode(), digest_size=8).hexdigest()
    return cache_dir() / f"btf-{tag}-{key[:12].hex()}.idx"


def _checksum(*arrays: np.ndarray) -> int:
    """Sum of the arrays' elements as uint64 (mod 2**64): any flipped bit changes it, and it costs a
    fraction of a millisecond for the whole vmlinux blob, so a hit can afford to check everything."""
    total = 0
    for a in arrays:
        total += int(np.add.reduce(a, dtype=np.uint64)) if len(a) else 0
    return total & ((1 << 64) - 1)


def _blob_words(buf, arr_off: int) -> np.ndarray:
    """The blob and its zero padding up to ``arr_off`` (8-aligned) as uint64 words."""
    return np.frombuffer(buf, dtype="<u8", count=arr_off // 8)


def _load(entry: Path, key: bytes) -> Optional[tuple[mmap.mmap, TypeIndex, int]]:
    """(mmap, index, blob length) of a valid entry for ``key``, else None."""
    try:
        with open(entry, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        if len(mm) < _HEAD.size:
            return None
        tail = len(mm) - _HEAD.size
        (magic, version, flags, ekey, blob_digest, data_len, n, n_odd, n_keys, blob_sum, index_sum, data_off,
         arr_off) = _HEAD.unpack_from(mm, tail)
        if magic != _MAGIC or version != _VERSION or flags or ekey != key or data_off:
            return None
        n32 = 3 * n + n_odd + n_keys
        keys_off = (arr_off + 4 * n32 + 7) & ~7
        if data_len > arr_off or arr_off % 8 or keys_off + 8 * n_keys != tail:
            return None
        if _content_digest_bytes(memoryview(mm)[:data_len], data_len) != blob_digest:
            return None
        if _checksum(_blob_words(mm, arr_off)) != blob_sum:
            return None
        arrays = np.frombuffer(mm, dtype="<u4", count=n32, offset=arr_off)
        keys = np.frombuffer(mm, dtype="<u8", count=n_keys, offset=keys_off)
        if _checksum(arrays, keys) != index_sum:
            return None
        offsets, sorted_offs, order = arrays[:n], arrays[n:2 * n], arrays[2 * n:3 * n]
        odd, key_order = arrays[3 * n:3 * n + n_odd], arrays[3 * n + n_odd:]
        if n and (offsets[0] != 0 or np.any(offsets[1:] <= offsets[:-1]) or int(offsets[-1]) * 4 >= data_len):
            return None
        if n_keys and int(key_order.max()) >= n:
            return None
        index = TypeIndex(offsets=offsets, name_offs_sorted=sorted_offs, order=order, odd=odd,
                          keys_sorted=keys, key_order=key_order)
        return mm, index, data_len
    except (ValueError, struct.error):
        return None


def _store(entry: Path, key: bytes, btf: "BTF") -> None:
    idx = btf.index
    if idx.keys_sorted is None:
        add_name_keys(idx, btf._words, btf._all_strings())  # the open BTF uses them from now on too
    assert idx.keys_sorted is not None and idx.key_order is not None
    data = btf.raw
    arrays = [np.ascontiguousarray(a, dtype="<u4") for a in (idx.offsets, idx.name_offs_sorted, idx.order, idx.odd,
                                                             idx.key_order)]
    keys = np.ascontiguousarray(idx.keys_sorted, dtype="<u8")
    n32 = sum(len(a) for a in arrays)
    arr_off = (len(data) + 7) & ~7
    keys_off = (arr_off + 4 * n32 + 7) & ~7
    padded = data + b"\0" * (arr_off - len(data))
    trailer = _HEAD.pack(_MAGIC, _VERSION, 0, key, _content_digest_bytes(data, len(data)), len(data), len(idx),
                         len(idx.odd), len(keys), _checksum(_blob_words(padded, arr_off)), _checksum(*arrays, keys),
                         0, arr_off)
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(padded)
            for a in arrays:
                f.write(a.tobytes())
            f.write(b"\0" * (keys_off - arr_off - 4 * n32))
            f.write(keys.tobytes())
            f.write(trailer)
        os.replace(tmp, entry)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # drop older entries of the same source (the kernel or file changed)
    prefix = entry.name.rsplit("-", 1)[0] + "-"
    for old in entry.parent.glob(prefix + "*.idx"):
        if old != entry:
            try:
                old.unlink()
            except OSError:
                pass


def open_cached(cls: "type[BTF]", path: Path, base: "Optional[BTF]",
                extract: Optional[Callable[[bytes], bytes]] = None) -> "BTF":
    """Open the BTF in file ``path`` through the index cache (parsing and storing on a miss).

    ``extract`` turns the file's bytes into the BTF blob (an ELF ``.BTF`` section, an archive's
    member); a hit skips it, so cached vmlinux images and BTFHub archives are not unpacked again.
    """
    from .archive import read_file

    try:
        key, _size = cache_key(path, base)
    except OSError as e:
        raise BTFError(f"cannot read BTF from {path}: {e.strerror or e}") from e
    entry = _entry_path(path, key)
    _join(entry)  # an entry this process is still writing
    hit = _load(entry, key)
    if hit is not None:
        mm, index, length = hit
        try:
            btf = cls(mm, base, index=index, source=str(path), length=length)
        except BTFError:
            btf = None  # a damaged entry: parse the source instead
            stats["rejected"] += 1
        if btf is not None:
            btf.from_cache = True
            btf._cache_key = key  # type: ignore[attr-defined]
            stats["hits"] += 1
            return btf
    stats["misses"] += 1
    data = read_file(path)
    blob = extract(data) if extract is not None else data
    btf = cls(blob, base, source=str(path))
    btf._cache_key = key  # type: ignore[attr-defined]
    try:
        unchanged = cache_key(path, base)[0] == key  # the file did not change while we read it
    except OSError:
        unchanged = False
    if unchanged:
        _store_in_background(entry, key, btf)
    return btf


_pending: dict[Path, threading.Thread] = {}
_pending_lock = threading.Lock()


def _store_in_background(entry: Path, key: bytes, btf: "BTF") -> None:
    """Write the entry from a (non-daemon) thread: the open returns at once, and the interpreter
    waits for the write at exit, so no half-written file is left behind."""
    def work() -> None:
        try:
            _store(entry, key, btf)
            stats["stores"] += 1
        except Exception:  # a cache must never break an open: OSError, or anything unexpected
            stats["store_errors"] += 1
        finally:
            with _pending_lock:
                _pending.pop(entry, None)

    t = threading.Thread(target=work, name="corebpf-btf-index-cache")
    with _pending_lock:
        _pending[entry] = t
    t.start()


def _join(entry: Optional[Path] = None) -> None:
    with _pending_lock:
        threads = [t for e, t in _pending.items() if entry is None or e == entry]
    for t in threads:
        t.join()


def wait() -> None:
    """Wait until cache entries being written in the background are on disk."""
    _join()


def clear() -> int:
    """Remove every cache entry; returns how many were removed."""
    wait()
    n = 0
    d = cache_dir()
    if d.is_dir():
        for p in d.glob("btf-*.idx"):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n
