"""The bpf() layer against the real kernel: the smallest round trip and error mapping."""

import pytest

from corebpf._sys import MapType, ops, uapi
from corebpf.errors import BPFInvalidArgumentError, BPFNotFoundError


def test_hash_map_round_trip_and_info():
    with ops.map_create(MapType.HASH, 4, 8, 16, name="smoke") as fd:
        ops.map_update_elem(fd, (1).to_bytes(4, "little"), (42).to_bytes(8, "little"))
        value = bytearray(8)
        assert ops.map_lookup_elem(fd, (1).to_bytes(4, "little"), value)
        assert int.from_bytes(value, "little") == 42
        assert not ops.map_lookup_elem(fd, (2).to_bytes(4, "little"), value)
        info = uapi.MapInfo()
        ops.obj_get_info_by_fd(fd, info)
        assert info.name == b"smoke" and info.type == MapType.HASH and info.max_entries == 16
        assert info.id in ops.iter_ids("map")


def test_errors_carry_command_and_hint():
    with pytest.raises(BPFInvalidArgumentError) as exc:
        ops.map_create(9999, 4, 8, 16)
    assert exc.value.command == "BPF_MAP_CREATE" and exc.value.hint
    with pytest.raises(BPFNotFoundError):
        ops.get_fd_by_id("map", 0xFFFFFFF0)
