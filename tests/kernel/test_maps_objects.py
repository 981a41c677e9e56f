"""Map objects: ids, pins, fds, freeze, info records, context managers, errors."""

from __future__ import annotations

import os

import pytest

import corebpf
from corebpf import Map, MapType
from corebpf._sys import ops
from corebpf.errors import BPFError, BPFNotFoundError, BPFPermissionError
from corebpf.maps import MapInfo


def test_public_names():
    assert corebpf.Map is Map and corebpf.MapType is MapType


def test_info_record():
    with Map.create(MapType.LRU_HASH, 8, 16, 32, name="info_test", flags=2) as m:
        info = m.info
        assert isinstance(info, MapInfo)
        assert (info.name, info.type, info.key_size, info.value_size, info.max_entries, info.flags) == \
            ("info_test", MapType.LRU_HASH, 8, 16, 32, 2)
        assert info.id == m.id > 0 and info.btf_id == 0
        assert info.id in ops.iter_ids("map")
        assert "lru_hash" in repr(m)


def test_type_by_name_number_and_enum():
    for spec in ("percpu_array", "PERCPU_ARRAY", "BPF_MAP_TYPE_PERCPU_ARRAY", 6, MapType.PERCPU_ARRAY):
        with Map.create(spec, 4, 4, 1) as m:
            assert m.type == MapType.PERCPU_ARRAY


def test_from_id_and_from_fd_share_the_map():
    with Map.create("hash", 4, 4, 8) as m:
        m[1] = b"abcd"
        with Map.from_id(m.id) as again:
            assert again.id == m.id and again[1] == b"abcd" and again.fileno() != m.fileno()
        with Map.from_fd(m.fileno()) as dup:
            assert dup.id == m.id and dup.fileno() != m.fileno()
        assert not m.closed  # from_fd(int) duplicated; ours is untouched
    with pytest.raises(BPFNotFoundError):
        Map.from_id(0xFFFFFFF0)
    with open(__file__) as f, pytest.raises(ValueError, match="not a BPF map"):
        Map.from_fd(f.fileno())


def test_pin_and_from_pin(bpffs: str):
    path = os.path.join(bpffs, "pinned_map")
    with Map.create("array", 4, 4, 2, name="pinned") as m:
        m[0] = b"pin!"
        m.pin(path)
        map_id = m.id
    try:
        with Map.from_pin(path) as again:  # the pin kept the map alive after close
            assert again.id == map_id and again[0] == b"pin!"
        with pytest.raises(BPFError):
            Map.from_pin(os.path.join(bpffs, "missing"))
    finally:
        os.unlink(path)


def test_freeze():
    with Map.create("array", 4, 4, 2) as m:
        m[0] = b"1234"
        m.freeze()
        assert m[0] == b"1234"
        with pytest.raises(BPFPermissionError):
            m[0] = b"5678"


def test_context_manager_closes_and_closed_map_errors():
    m = Map.create("hash", 4, 4, 1)
    with m:
        fd = m.fileno()
    assert m.closed
    assert not os.path.exists(f"/proc/self/fd/{fd}") or os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-map"
    with pytest.raises(ValueError, match="closed"):
        m[0] = b"abcd"
    m.close()  # idempotent


def test_mapping_protocol():
    with Map.create("hash", 4, 4, 8) as m:
        m.update({b"\1\0\0\0": b"aaaa", b"\2\0\0\0": b"bbbb"})
        m.update([(b"\3\0\0\0", b"cccc")])
        assert sorted(m.values()) == [b"aaaa", b"bbbb", b"cccc"]
        assert m.setdefault(b"\4\0\0\0", b"dddd") == b"dddd" and len(m) == 4
        assert m.pop(b"\x09\0\0\0", None) is None
        m.clear()
        assert len(m) == 0 and list(m.items()) == []
        assert m == m and m != {}  # identity, not element-wise comparison
        assert hash(m) == hash(m)


def test_hash_full_raises_with_errno():
    with Map.create("hash", 4, 4, 2) as m:
        m[1] = b"aaaa"
        m[2] = b"bbbb"
        with pytest.raises(BPFError) as exc:
            m[3] = b"cccc"
        assert exc.value.errno == 7  # E2BIG: the map is full


def test_clear_and_views_on_many_maps():
    with Map.create("hash", 4, 4, 4096) as m:
        for i in range(3000):
            m[i] = b"abcd"
        assert len(m.items()) == 3000 and set(m.values()) == {b"abcd"}
        m.clear()
        assert len(m) == 0
    with Map.create("prog_array", 4, 4, 4) as pa:
        pa.clear()  # empty slots are fine
    with Map.create("array", 4, 4, 4) as a, pytest.raises(TypeError, match="overwrite"):
        a.clear()


def test_items_skip_keys_deleted_while_iterating():
    with Map.create("hash", 4, 4, 16) as m:
        for i in range(10):
            m[i] = b"abcd"
        seen = []
        for key, value in m.items():
            seen.append(key)
            if len(seen) == 1:
                for other in range(10):
                    if other.to_bytes(4, "little") != key:
                        m.pop(other.to_bytes(4, "little"), None)
        assert len(seen) >= 1 and len(m) == 1
