"""Values by type: decode/encode round trips and numpy dtypes with exact layouts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.values import BTFValueError, EnumMember, StructValue, decode, encode, numpy_dtype


def event_btf(byteorder: str) -> tuple[BTF, dict[str, int]]:
    b = BTFBuilder(byteorder=byteorder)
    ids = {}
    i32 = b.add_int("int", 4, signed=True)
    u32 = b.add_int("unsigned int", 4)
    u16 = b.add_int("short unsigned int", 2)
    u64 = b.add_int("long long unsigned int", 8)
    s8 = b.add_int("signed char", 1, signed=True)
    ch = b.add_int("char", 1, signed=True)
    bl = b.add_int("_Bool", 1, bool_=True)
    dbl = b.add_float("double", 8)
    comm = b.add_array(ch, i32, 16)
    pair = b.add_array(u16, i32, 2)
    grid = b.add_array(pair, i32, 3)  # unsigned short grid[3][2]
    ids["state"] = state = b.add_enum("state", [("RUNNING", 0), ("SLEEPING", 1), ("ZOMBIE", -1)])
    ids["wide"] = wide = b.add_enum64("wide", [("HUGE", 1 << 60)])
    anon = b.add_struct("", 8, [("lo", u32, 0), ("hi", u32, 32)])
    ids["union"] = un = b.add_union("payload", 8, [("raw", u64, 0), ("", anon, 0), ("d", dbl, 0)])
    ids["inner"] = inner = b.add_struct("inner", 4, [("a", u16, 0, 5), ("b", s8, 5, 3), ("c", u16, 8, 8)])
    ids["event"] = b.add_struct("event", 80, [
        ("pid", i32, 0), ("flags", u32, 32, 3), ("prio", i32, 35, 7), ("st", state, 42, 2),
        ("ok", bl, 48), ("comm", comm, 64), ("grid", grid, 192), ("w", wide, 320), ("p", un, 384),
        ("in", inner, 448), ("ptr", b.add_ptr(0), 512), ("pad", s8, 576),
    ])
    ids["typedef"] = b.add_const(b.add_typedef("event_t", ids["event"]))
    return b.to_btf(), ids


SAMPLE = {
    "pid": -42, "flags": 6, "prio": -64, "st": "ZOMBIE", "ok": True, "comm": "bash",
    "grid": [[1, 2], [3, 4], [65535, 0]], "w": 1 << 60, "p": {"raw": 0x0123456789ABCDEF},
    "in": {"a": 31, "b": -4, "c": 200}, "ptr": 0xFFFF888012345678, "pad": -1,
}


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_round_trip(byteorder: str) -> None:
    btf, ids = event_btf(byteorder)
    t = btf[ids["typedef"]]  # through const and typedef
    raw = encode(t, SAMPLE)
    assert len(raw) == 80
    v = decode(t, raw)
    assert isinstance(v, StructValue) and v.pid == -42 and v["flags"] == 6 and v.prio == -64
    assert isinstance(v.st, EnumMember) and v.st.name == "ZOMBIE" and v.st == -1 and str(v.st) == "ZOMBIE"
    assert v.ok is True and v.comm == "bash" and v.grid == [[1, 2], [3, 4], [65535, 0]]
    assert v.w.name == "HUGE"
    assert v.p.raw == 0x0123456789ABCDEF  # union: every member decoded from the same bytes
    lo, hi = (0x89ABCDEF, 0x01234567) if byteorder == "little" else (0x01234567, 0x89ABCDEF)
    assert (v.p.lo, v.p.hi) == (lo, hi)  # anonymous struct members appear in the parent
    assert v["in"] == {"a": 31, "b": -4, "c": 200}
    assert v.ptr == 0xFFFF888012345678 and v.pad == -1
    assert encode(t, v) == raw


def test_bitfields_are_where_c_puts_them() -> None:
    btf, ids = event_btf("little")
    raw = encode(btf[ids["inner"]], {"a": 0b10101, "b": -1, "c": 0x5A})
    word = int.from_bytes(raw, "little")
    assert word & 0x1F == 0b10101 and (word >> 5) & 0x7 == 0x7 and (word >> 8) & 0xFF == 0x5A
    raw_be = encode(event_btf("big")[0][ids["inner"]], {"a": 0b10101, "b": 0, "c": 0})
    assert raw_be[0] >> 3 == 0b10101  # big endian: bit offset 0 is the most significant bit


def test_char_arrays_and_errors() -> None:
    btf, ids = event_btf("little")
    t = btf[ids["event"]]
    raw = encode(t, {"comm": b"x" * 16})  # exactly full, no NUL
    assert decode(t, raw).comm == "x" * 16
    assert decode(t, raw, chars="bytes").comm == b"x" * 16
    assert decode(t, encode(t, {"comm": "ab"}), chars="raw").comm == [97, 98] + [0] * 14
    with pytest.raises(BTFValueError, match="do not fit"):
        encode(t, {"comm": "y" * 17})
    with pytest.raises(BTFValueError, match="no member"):
        encode(t, {"nope": 1})
    with pytest.raises(BTFValueError, match="does not fit"):
        encode(t, {"flags": 8})
    with pytest.raises(BTFValueError, match="does not fit"):
        encode(t, {"pid": 1 << 31})
    with pytest.raises(BTFValueError, match="enumerator"):
        encode(t, {"w": "NOPE"})
    with pytest.raises(BTFValueError, match="needs 80 bytes"):
        decode(t, bytes(10))
    assert decode(t, bytes(80)).st.name == "RUNNING"


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_numpy_dtype_matches_layout(byteorder: str) -> None:
    btf, ids = event_btf(byteorder)
    t = btf[ids["event"]]
    dt = numpy_dtype(t)
    assert dt.itemsize == t.size
    for m in t.members:
        if m.name and not m.is_bitfield:
            assert dt.fields[m.name][1] == m.offset, m.name
    assert dt.fields["p"][1] == 48 and dt.fields["p"][0].fields["lo"][1] == 0
    assert [b[0] for b in dt.metadata["bitfields"]] == ["flags", "prio", "st"]
    raw = encode(t, SAMPLE)
    batch = np.frombuffer(raw * 3, dtype=dt)
    assert list(batch["pid"]) == [-42] * 3
    assert batch["comm"][0] == b"bash"
    assert batch["grid"].shape == (3, 3, 2) and batch["grid"][1, 2, 0] == 65535
    assert batch["p"]["raw"][2] == 0x0123456789ABCDEF
    assert batch["ok"].dtype == np.bool_ and batch["ok"].all()


def test_vmlinux_dtypes_have_exact_layout() -> None:
    import os

    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no kernel BTF")
    btf = BTF.vmlinux()
    for name in ("task_struct", "sk_buff", "bpf_attr", "perf_event_attr", "trace_entry", "iphdr"):
        t = btf.find(name)
        dt = numpy_dtype(t)
        assert dt.itemsize == t.size, name


ints = st.integers


@settings(max_examples=200, deadline=None)
@given(pid=ints(-(1 << 31), (1 << 31) - 1), flags=ints(0, 7), prio=ints(-64, 63), st_=st.sampled_from(
    ["RUNNING", "SLEEPING", "ZOMBIE"]), comm=st.binary(max_size=16).map(lambda b: b.replace(b"\0", b"")),
    a=ints(0, 31), b=ints(-4, 3), c=ints(0, 255), raw=ints(0, (1 << 64) - 1), order=st.sampled_from(["little", "big"]))
def test_round_trip_property(pid, flags, prio, st_, comm, a, b, c, raw, order) -> None:
    btf, ids = event_btf(order)
    t = btf[ids["event"]]
    value = {"pid": pid, "flags": flags, "prio": prio, "st": st_, "comm": comm, "p": {"raw": raw},
             "in": {"a": a, "b": b, "c": c}}
    data = encode(t, value)
    back = decode(t, data, chars="bytes")
    assert (back.pid, back.flags, back.prio, back.st.name, back.comm, back.p.raw) == (pid, flags, prio, st_, comm, raw)
    assert back["in"] == {"a": a, "b": b, "c": c}
    assert encode(t, back) == data
