"""The on-disk index cache: hits on the second open, invalidation, damage and read-only fallbacks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corebpf.btf import BTF, Kind
from corebpf.btf import index_cache
from corebpf.btf.builder import BTFBuilder


def big_btf(n: int = 3000, tag: str = "") -> bytes:
    """Enough types that the sampled-key logic and the index arrays matter."""
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    for k in range(n):
        s = b.add_struct(f"s{tag}{k}", 8, [("a", i, 0), ("b", i, 32)])
        b.add_typedef(f"t{tag}{k}", s)
    return b.encode()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("COREBPF_CACHE_DIR", str(d))
    return d


def entries(d: Path) -> list[Path]:
    return sorted(d.glob("btf-*.idx")) if d.exists() else []


def test_second_open_uses_the_cache(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf())
    hits = index_cache.stats["hits"]
    first = BTF.from_file(path)
    index_cache.wait()
    assert not first.from_cache and len(entries(cache_dir)) == 1
    second = BTF.from_file(path)
    assert second.from_cache and index_cache.stats["hits"] == hits + 1
    assert second.find("s1234", Kind.STRUCT).id == first.find("s1234", Kind.STRUCT).id
    assert [t.name for t in second] == [t.name for t in first]
    assert second.raw == first.raw


def test_changed_file_invalidates(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf())
    BTF.from_file(path)
    # same size, different content, and the mtime put back: the sampled content still differs
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[-2] = ord("z") if data[-2] != ord("z") else ord("y")  # last string's last character
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = BTF.from_file(path)
    assert not again.from_cache
    # a different file with a new mtime: the old entry is replaced, not accumulated
    path.write_bytes(big_btf(tag="x"))
    third = BTF.from_file(path)
    index_cache.wait()
    assert not third.from_cache and third.find("sx7").name == "sx7"
    assert len(entries(cache_dir)) == 1


@pytest.mark.parametrize("where", ["trailer", "index", "data", "truncate", "empty"])
def test_damaged_entry_falls_back_to_parsing(tmp_path: Path, cache_dir: Path, where: str) -> None:
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf())
    want = [t.name for t in BTF.from_file(path)]
    index_cache.wait()
    (entry,) = entries(cache_dir)
    blob = bytearray(entry.read_bytes())
    size = path.stat().st_size
    if where == "trailer":
        blob[-64] ^= 0xFF  # inside the key
    elif where == "index":
        blob[size + 64] ^= 0x5A
    elif where == "data":
        blob[0] ^= 0xFF  # the BTF copy's header (a sampled block)
    elif where == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob = bytearray()
    entry.write_bytes(bytes(blob))
    btf = BTF.from_file(path)
    assert not btf.from_cache
    assert [t.name for t in btf] == want
    assert BTF.from_file(path).from_cache  # and the entry was rewritten


def test_unwritable_cache_does_not_fail_the_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("COREBPF_CACHE_DIR", str(blocker / "cache"))  # mkdir fails with ENOTDIR
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf(50))
    errors = index_cache.stats["store_errors"]
    assert BTF.from_file(path).find("s3").size == 8
    index_cache.wait()
    assert index_cache.stats["store_errors"] == errors + 1
    assert not BTF.from_file(path).from_cache


def test_cache_off(tmp_path: Path, cache_dir: Path) -> None:
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf(50))
    BTF.from_file(path, cache=False)
    assert entries(cache_dir) == []
    BTF.from_file(path)
    assert index_cache.clear() == 1 and entries(cache_dir) == []  # clear() waits for the write


def test_split_btf_key_depends_on_base(tmp_path: Path, cache_dir: Path) -> None:
    base_path = tmp_path / "base.btf"
    base_path.write_bytes(big_btf(100))
    base = BTF.from_file(base_path)
    b = BTFBuilder(base=base)
    b.add_ptr(base.find("s5").id)
    b.add_struct("mod", 8, [("p", base.last_id + 1, 0)])
    b.add_raw([base._name_offsets(b"t42")[0], int(Kind.TYPEDEF) << 24, base.find("s42").id])  # base string
    split_path = tmp_path / "mod.btf"
    split_path.write_bytes(b.encode())
    first = BTF.from_file(split_path, base=base)
    second = BTF.from_file(split_path, base=BTF.from_file(base_path))
    assert not first.from_cache and second.from_cache
    assert second.find("mod").member("p").type.target.name == "s5"
    for btf in (first, second):  # string search (parsed) and hash index (cached) agree
        assert [t.id for t in btf.find_all("t42")] == [base.find("t42").id, base.last_id + 3]


def test_store_is_in_the_background_and_waited_for(tmp_path: Path, cache_dir: Path) -> None:
    """The open returns before the entry is written; a second open in the process waits for it."""
    path = tmp_path / "v.btf"
    path.write_bytes(big_btf())
    stores = index_cache.stats["stores"]
    BTF.from_file(path)
    again = BTF.from_file(path)  # joins the pending write of the same entry, then hits
    assert again.from_cache and index_cache.stats["stores"] == stores + 1


def test_archives_are_cached_without_unpacking_again(tmp_path: Path, cache_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import lzma
    import tarfile

    from corebpf.btf import archive

    blob = big_btf()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("5.4.0-test.btf")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    path = tmp_path / "5.4.0-test.btf.tar.xz"
    path.write_bytes(lzma.compress(buf.getvalue()))
    first = BTF.from_file(path)
    index_cache.wait()
    assert not first.from_cache and first.raw == blob
    unpacked = []
    real = archive.unpack_archive
    monkeypatch.setattr(archive, "unpack_archive", lambda *a, **k: unpacked.append(1) or real(*a, **k))
    second = BTF.from_file(path)
    assert second.from_cache and second.raw == blob and unpacked == []
    assert second.find("s2999").size == 8


def test_damage_anywhere_in_the_blob_copy_is_caught(tmp_path: Path, cache_dir: Path) -> None:
    """Not just in the sampled blocks: every byte of the cached BTF copy is covered by a checksum."""
    path = tmp_path / "v.btf"
    data = big_btf()
    path.write_bytes(data)
    BTF.from_file(path)
    index_cache.wait()
    (entry,) = entries(cache_dir)
    for pos in (100, len(data) // 3 + 7, len(data) - 700):
        blob = bytearray(entry.read_bytes())
        blob[pos] ^= 0x01
        entry.write_bytes(bytes(blob))
        btf = BTF.from_file(path)
        index_cache.wait()
        assert not btf.from_cache and btf.raw == data


def test_random_damage_never_gives_wrong_types(tmp_path: Path, cache_dir: Path) -> None:
    """Hypothesis: flip any bytes of an entry; the open either falls back or returns the right types."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    path = tmp_path / "v.btf"
    data = big_btf(300)
    path.write_bytes(data)
    want = [t.name for t in BTF.from_file(path, cache=False)]
    BTF.from_file(path)
    index_cache.wait()
    (entry,) = entries(cache_dir)
    pristine = entry.read_bytes()

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), min_size=1, max_size=4))
    def check(flips: list[tuple[int, int]]) -> None:
        blob = bytearray(pristine)
        for pos, x in flips:
            blob[pos % len(blob)] ^= x
        entry.write_bytes(bytes(blob))
        btf = BTF.from_file(path)
        index_cache.wait()
        assert [t.name for t in btf] == want
        assert btf.find("s299").size == 8

    check()
