"""Map type rules, per-CPU buffers and the opaque-value BTF, without a kernel."""

from __future__ import annotations

import struct

import pytest

from corebpf.maps import MapType, UpdateFlags
from corebpf.maps import percpu
from corebpf.maps.scalar_btf import opaque_value_btf
from corebpf.maps.types import BPF_F_MMAPABLE, BPF_F_NO_PREALLOC, RULES, Kind, check_create, parse_map_type


@pytest.mark.parametrize("spec", ["percpu_hash", "PERCPU_HASH", "BPF_MAP_TYPE_PERCPU_HASH", "percpu-hash", 5,
                                  MapType.PERCPU_HASH])
def test_parse_map_type(spec: object):
    assert parse_map_type(spec) is MapType.PERCPU_HASH  # type: ignore[arg-type]


def test_parse_map_type_errors():
    with pytest.raises(ValueError, match="unknown map type 'nope'.*hash"):
        parse_map_type("nope")
    with pytest.raises(ValueError, match="number 999"):
        parse_map_type(999)
    with pytest.raises(TypeError):
        parse_map_type(1.5)  # type: ignore[arg-type]


def test_every_uapi_type_has_rules():
    assert set(RULES) == {t for t in MapType if t != MapType.UNSPEC}
    assert all(r.since for r in RULES.values())


@pytest.mark.parametrize("args, match", [
    ((MapType.ARRAY, 8, 4, 1, 0), "key_size must be 4"),
    ((MapType.HASH, 0, 4, 1, 0), "key_size must be > 0"),
    ((MapType.HASH, 4, 0, 1, 0), "value_size must be > 0"),
    ((MapType.HASH, 4, 4, 0, 0), "max_entries must be > 0"),
    ((MapType.PROG_ARRAY, 4, 8, 1, 0), "value_size must be 4"),
    ((MapType.SOCKMAP, 4, 2, 1, 0), "value_size must be 4 or 8"),
    ((MapType.QUEUE, 4, 4, 1, 0), "key_size must be 0"),
    ((MapType.LPM_TRIE, 4, 4, 1, BPF_F_NO_PREALLOC), "prefixlen"),
    ((MapType.LPM_TRIE, 8, 4, 1, 0), "BPF_F_NO_PREALLOC"),
    ((MapType.STACK_TRACE, 4, 12, 1, 0), "multiple of 8"),
    ((MapType.RINGBUF, 0, 0, 4096 * 3, 0), "power of two"),
    ((MapType.ARENA, 0, 0, 1, 0), "BPF_F_MMAPABLE"),
    ((MapType.SK_STORAGE, 4, 4, 1, BPF_F_NO_PREALLOC), "max_entries must be 0"),
    ((MapType.CGROUP_STORAGE, 12, 4, 0, 0), "key_size must be 8 or 16"),
    ((MapType.HASH, -1, 4, 1, 0), "key_size must be an integer"),
])
def test_check_create_rejects(args: tuple, match: str):
    with pytest.raises(ValueError, match=match):
        check_create(*args, has_inner_map=False, has_btf=False)


def test_check_create_accepts_valid_requests():
    check_create(MapType.HASH, 4, 8, 1, 0, False, False)
    check_create(MapType.RINGBUF, 0, 0, 4096 * 4, 0, False, False)
    check_create(MapType.ARENA, 0, 0, 1, BPF_F_MMAPABLE, False, False)
    check_create(MapType.ARRAY_OF_MAPS, 4, 4, 1, 0, True, False)
    check_create(MapType.PERF_EVENT_ARRAY, 4, 4, 0, 0, False, False)  # 0: one per CPU
    with pytest.raises(ValueError, match="inner_map"):
        check_create(MapType.HASH_OF_MAPS, 4, 4, 1, 0, False, False)
    with pytest.raises(ValueError, match="btf_vmlinux_value_type_id"):
        check_create(MapType.STRUCT_OPS, 4, 4, 1, 0, False, False)


def test_kinds_and_flags():
    assert RULES[MapType.PROG_ARRAY].lookup_returns_id and RULES[MapType.PROG_ARRAY].value_is_fd
    assert RULES[MapType.LRU_PERCPU_HASH].percpu and RULES[MapType.QUEUE].kind is Kind.QUEUE
    assert (UpdateFlags.ANY, UpdateFlags.NOEXIST, UpdateFlags.EXIST) == (0, 1, 2)


@pytest.mark.parametrize("text, cpus", [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4,6-7\n", [0, 1, 4, 6, 7]),
                                        ("", [])])
def test_parse_cpu_list(text: str, cpus: list[int]):
    assert percpu.parse_cpu_list(text) == cpus


def test_parse_cpu_list_malformed():
    with pytest.raises(ValueError, match="malformed"):
        percpu.parse_cpu_list("0-x")


def test_percpu_pack_unpack_rounds_to_8():
    assert percpu.slot_size(1) == 8 and percpu.slot_size(8) == 8 and percpu.slot_size(12) == 16
    buf = percpu.pack([b"abc", b"def", b"ghi"], 3, ncpus=3)
    assert len(buf) == 24 and buf[8:11] == b"def" and buf[3:8] == bytes(5)
    assert percpu.unpack(buf, 3, ncpus=3) == [b"abc", b"def", b"ghi"]
    assert percpu.pack(b"xyz", 3, ncpus=2) == bytearray(b"xyz" + bytes(5) + b"xyz" + bytes(5))
    assert percpu.pack(bytes(16), 3, ncpus=2) == bytearray(16)  # an already packed buffer passes through
    with pytest.raises(ValueError, match="one value per possible CPU"):
        percpu.pack([b"abc"], 3, ncpus=2)
    with pytest.raises(ValueError, match="CPU 1 must be 3 bytes"):
        percpu.pack([b"abc", b"ab"], 3, ncpus=2)


def test_possible_cpus_is_positive():
    assert percpu.possible_cpus() >= 1


def test_opaque_value_btf_layout():
    data = opaque_value_btf(24)
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
    assert (magic, version, flags, hdr_len) == (0xEB9F, 1, 0, 24)
    assert len(data) == hdr_len + type_len + str_len and str_off == type_len
    strings = data[hdr_len + str_off:]
    assert strings == b"\0int\0unsigned char\0"
    # the third type is an array of 24 unsigned chars indexed by int
    array = struct.unpack_from("<IIIIII", data, hdr_len + 32)
    assert array[1] >> 24 == 3 and array[3:] == (2, 1, 24)
