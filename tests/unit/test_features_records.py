"""Feature-probe building blocks without a kernel: the BTF scan, instruction encodings, records."""

from __future__ import annotations

import struct

import pytest

from corebpf.errors import BTFError
from corebpf.features import FeatureReport
from corebpf.features._btfids import KIND_FUNC, KIND_STRUCT, KIND_TYPEDEF, find_types
from corebpf.features._insn import EXIT, call, ret
from corebpf.features.helpers import HelperSupport, helper_names
from corebpf.features.maps import storage_btf
from corebpf.features.probes import ProbeResult, errno_name, last_log_line


def _btf(types: list[bytes], strings: bytes) -> bytes:
    body = b"".join(types)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(strings)) + body + strings


def _sample() -> bytes:
    strings = b"\0int\0point\0x\0y\0do_thing\0point_t\0"
    off = {s: strings.index(b"\0" + s.encode() + b"\0") + 1 for s in ("int", "point", "x", "y", "do_thing", "point_t")}
    types = [
        struct.pack("<IIII", off["int"], 1 << 24, 4, 32),                                  # 1 INT
        struct.pack("<III", off["point"], (4 << 24) | 2, 8)                                 # 2 STRUCT point
        + struct.pack("<III", off["x"], 1, 0) + struct.pack("<III", off["y"], 1, 32),
        struct.pack("<III", 0, (13 << 24) | 1, 1) + struct.pack("<II", 0, 1),                # 3 FUNC_PROTO int(int)
        struct.pack("<III", off["do_thing"], (12 << 24) | 1, 3),                            # 4 FUNC do_thing
        struct.pack("<III", off["point_t"], 8 << 24, 2),                                    # 5 TYPEDEF point_t
    ]
    return _btf(types, strings)


def test_find_types_ids_sizes_members() -> None:
    found = find_types(_sample(), [("do_thing", KIND_FUNC), ("point", KIND_STRUCT), ("point_t", KIND_TYPEDEF),
                                   ("point", KIND_FUNC), ("absent", KIND_FUNC)])
    assert found[("do_thing", KIND_FUNC)].type_id == 4
    assert found[("point", KIND_STRUCT)].type_id == 2
    assert found[("point", KIND_STRUCT)].size == 8
    assert found[("point", KIND_STRUCT)].members == ("x", "y")
    assert found[("point", KIND_STRUCT)].offsets == (0, 4)  # bytes (BTF stores bits)
    assert found[("point_t", KIND_TYPEDEF)].type_id == 5
    assert ("point", KIND_FUNC) not in found and ("absent", KIND_FUNC) not in found


def test_find_types_on_storage_btf() -> None:
    assert find_types(storage_btf(), [("int", 1)])[("int", 1)].type_id == 1


@pytest.mark.parametrize("blob", [b"", b"\x9f\xeb", b"\0" * 24, _sample()[:40], _sample()[:-3]])
def test_find_types_malformed_raises_btferror(blob: bytes) -> None:
    with pytest.raises(BTFError):
        find_types(blob, [("do_thing", KIND_FUNC)])


def test_find_types_truncated_type_section() -> None:
    data = bytearray(_sample())
    # claim the struct has 200 members: the walk runs past the section end
    struct.pack_into("<I", data, 24 + 16 + 4, (4 << 24) | 200)
    with pytest.raises(BTFError, match="runs past"):
        find_types(bytes(data), [("point_t", KIND_TYPEDEF)])


def test_insn_encodings() -> None:
    assert ret(0) == bytes.fromhex("b700000000000000") + EXIT
    assert EXIT == bytes.fromhex("9500000000000000")
    assert call(5) == bytes.fromhex("8500000005000000")


def test_errno_names_and_log_line() -> None:
    assert errno_name(1) == "EPERM" and errno_name(524) == "ENOTSUPP" and errno_name(None) is None
    log = "0: R1=ctx() R10=fp0\n0: (85) call bpf_probe_read#4\nprogram of this type cannot use helper " \
          "bpf_probe_read#4\nprocessed 1 insns (limit 1000000) max_states_per_insn 0\n"
    assert last_log_line(log) == "program of this type cannot use helper bpf_probe_read#4"
    assert last_log_line("") == ""


def test_helper_names_skip_side_effects() -> None:
    names = {h.name for h in helper_names()}
    assert "map_lookup_elem" in names and "probe_write_user" not in names and "trace_printk" not in names
    assert "probe_write_user" in {h.name for h in helper_names(include_side_effects=True)}


def test_report_round_trip() -> None:
    pr = ProbeResult("fentry", False, 1, "refused", "probe", "")
    rep = FeatureReport({"xdp": ProbeResult("xdp", True, None, "loads")}, {"tracing": {"fentry": pr}},
                        {"hash": ProbeResult("hash", True, None, "creates")},
                        {"xdp": HelperSupport("xdp", ("map_lookup_elem",), {"probe_read": "x"}, ("trace_printk",))},
                        {"fentry": pr}, {}, 0.5)
    d = rep.to_dict()
    again = FeatureReport.from_dict(d).to_dict()
    assert again == d
    assert d["attach"]["fentry"]["errno_name"] == "EPERM"
    assert d["helpers"]["xdp"]["counts"] == {"supported": 1, "unsupported": 1}


def test_report_wire_round_trip_keeps_everything() -> None:
    import marshal

    pr = ProbeResult("fentry", False, 1, "refused", "probe", "the verifier's line")
    rep = FeatureReport({"xdp": ProbeResult("xdp", True, None, "loads")}, {"tracing": {"fentry": pr}},
                        {"hash": ProbeResult("hash", True, None, "creates")},
                        {"xdp": HelperSupport("xdp", ("map_lookup_elem",), {"probe_read": "unknown func"},
                                              ("trace_printk",)),
                         "lsm": HelperSupport("lsm", (), {}, (), probed=False, reason="does not load")},
                        {"fentry": pr}, {"isa_v4": ProbeResult("isa_v4", True, None, "works")}, 0.25,
                        "/cache/file.json")
    again = FeatureReport.from_wire(marshal.loads(marshal.dumps(rep.to_wire())))
    assert again == rep  # frozen dataclasses: field by field, the helper reasons included


def test_split_prog_types_covers_every_type_once() -> None:
    from corebpf.features import _prog_type_names, split_prog_types

    names = _prog_type_names()
    for parts in (1, 2, 3, 4):
        groups = split_prog_types(parts)
        assert len(groups) == parts
        flat = [n for g in groups for n in g]
        assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    first, second = split_prog_types(2)
    assert "tracing" in second and len(first) < len(second)  # the first also does the attach probes


def test_merge_parts_keeps_probe_all_order() -> None:
    from corebpf.features import _prog_type_names, merge_parts

    names = _prog_type_names()
    ok = lambda n: ProbeResult(n, True, None, "loads")  # noqa: E731
    a = FeatureReport({n: ok(n) for n in names[1::2]}, {}, {"hash": ok("hash")}, {}, {"raw_tp": ok("raw_tp")},
                      {"isa_v2": ok("isa_v2")}, 0.2)
    b = FeatureReport({n: ok(n) for n in names[::2]}, {}, {}, {}, {}, {}, 0.3)
    m = merge_parts([b, a])
    assert list(m.prog_types) == names and m.attach == a.attach and m.map_types == a.map_types
    assert m.misc == a.misc and m.duration == 0.3
