"""BTF we build is accepted by the kernel, works as a map's key/value type, and bpftool agrees."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import pytest

from corebpf._sys import _generated as g
from corebpf._sys import ops
from corebpf.btf import BTF, Kind
from corebpf.errors import BPFError
from corebpf.btf.builder import BTFBuilder, BTFLoadError, load_btf
from corebpf.btf.sanitize import BTFFeatures, probe_features, sanitize
from corebpf.btf.values import decode, encode

needs_bpftool = pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")


def bpftool(*args: str) -> str:
    return subprocess.run(["bpftool", *args], check=True, capture_output=True, text=True).stdout


def event_btf() -> tuple[BTFBuilder, int, int]:
    b = BTFBuilder()
    i32 = b.add_int("int", 4, signed=True)
    u32 = b.add_int("unsigned int", 4)
    u64 = b.add_int("long long unsigned int", 8)
    ch = b.add_int("char", 1, signed=True)  # clang encodes char as SIGNED; the kernel allows one bit
    comm = b.add_array(ch, i32, 16)
    state = b.add_enum("state", [("RUNNING", 0), ("SLEEPING", 1), ("DEAD", 64)])
    inner = b.add_union("", 8, [("ts", u64, 0), ("raw", b.add_array(u32, i32, 2), 0)])
    ev = b.add_struct("event", 48, [
        ("pid", i32, 0), ("flags", u32, 32, 3), ("prio", i32, 35, 7), ("st", state, 64),
        ("comm", comm, 96), ("", inner, 256), ("cookie", u64, 320),
    ])
    b.add_typedef("event_t", ev)
    return b, u32, ev


@needs_bpftool
def test_map_with_our_btf_as_key_and_value() -> None:
    b, key_id, value_id = event_btf()
    spec = b.to_btf()
    with b.load() as loaded:
        with ops.map_create(g.MapType.HASH, 4, spec[value_id].size, 8, name="cbtf_test", btf_fd=loaded.fileno(),
                            btf_key_type_id=key_id, btf_value_type_id=value_id) as m:
            info = g.MapInfo()
            ops.obj_get_info_by_fd(m.fileno(), info)
            assert info.btf_id == loaded.id
            assert (info.btf_key_type_id, info.btf_value_type_id) == (key_id, value_id)
            shown = json.loads(bpftool("map", "show", "id", str(info.id), "-j"))
            assert shown["btf_id"] == loaded.id
            # a typed value round-trips through the kernel and bpftool prints it by our BTF
            value = {"pid": 42, "flags": 5, "prio": -9, "st": "DEAD", "comm": "corebpf", "ts": 7, "cookie": 99}
            key = ctypes.c_uint32(1)
            raw = encode(spec[value_id], value)
            ops.map_update_elem(m.fileno(), key, raw)
            out = ctypes.create_string_buffer(len(raw))
            assert ops.map_lookup_elem(m.fileno(), key, out)
            got = decode(spec[value_id], out.raw)
            assert (got.pid, got.flags, got.prio, str(got.st), got.comm, got.ts) == (42, 5, -9, "DEAD", "corebpf", 7)
            dump = json.loads(bpftool("map", "dump", "id", str(info.id), "-j"))
            formatted = dump[0]["formatted"]["value"]
            assert formatted["pid"] == 42 and formatted["cookie"] == 99 and formatted["st"] == "DEAD"
            # bpftool prints bitfields as the hex of their raw bits
            assert int(formatted["flags"], 0) == 5 and int(formatted["prio"], 0) == (-9) & 0x7F
            assert formatted["comm"] == "corebpf"
        # bpftool's reading of the loaded BTF is ours
        text = bpftool("btf", "dump", "id", str(loaded.id))
        assert f"[{value_id}] STRUCT 'event' size=48 vlen=7" in text
        assert "'prio' type_id=1 bits_offset=35 bitfield_size=7" in text
        from test_btf_vmlinux import compare_all  # the same field-by-field comparison as for vmlinux

        compare_all(spec, json.loads(bpftool("btf", "dump", "id", str(loaded.id), "-j"))["types"])


def test_copied_kernel_types_load_and_keep_layout() -> None:
    """Copy task_struct's closure out of vmlinux into a new blob; the kernel accepts it unchanged."""
    vm = BTF.vmlinux()
    b = BTFBuilder()
    ts = vm.find("task_struct", Kind.STRUCT)
    new_id = b.copy_type(ts)
    mine = b.to_btf()
    assert mine[new_id].size == ts.size
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in mine[new_id].members] == \
        [(m.name, m.bit_offset, m.bitfield_size) for m in ts.members]
    with b.load() as loaded:
        assert loaded.id > 0


def _all_kinds_btf() -> bytes:
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    dbl = b.add_float("double", 8)
    e64 = b.add_enum64("big", [("HUGE", 1 << 40), ("SMALL", 2)])
    b.add_enum("sgn", [("NEG", -1), ("POS", 1)])
    tagged = b.add_type_tag("user", i)
    ptr = b.add_ptr(tagged)
    s = b.add_struct("s", 32, [("a", i, 0), ("d", dbl, 64), ("e", e64, 128), ("p", ptr, 192)])
    v = b.add_var("gv", s, 1)
    flag = b.add_var("flag", b.add_int("char", 1, signed=True), 1)  # 1 byte at the section's end
    b.add_decl_tag("member_tag", s, 0)
    b.add_decl_tag("var_tag", v)
    b.add_datasec(".data", 33, [(v, 0, 32), (flag, 32, 1)])
    proto = b.add_func_proto(i, [("x", i)])
    b.add_func("fn", proto, 1)
    return b.encode()


@needs_bpftool
@pytest.mark.parametrize("features", [
    BTFFeatures.none(),
    BTFFeatures(enum64=False), BTFFeatures(type_tag=False), BTFFeatures(decl_tag=False),
    BTFFeatures(float=False), BTFFeatures(func_global=False), BTFFeatures(datasec=False), BTFFeatures(func=False),
], ids=lambda f: ",".join(k for k, v in vars(f).items() if not v) or "all")
def test_sanitised_btf_still_loads(features: BTFFeatures) -> None:
    data = _all_kinds_btf()
    with load_btf(data):
        pass  # this kernel knows every kind
    clean = sanitize(data, features)
    effective = features.implied()
    with load_btf(clean) as loaded:
        kinds = {line.split()[1] for line in bpftool("btf", "dump", "id", str(loaded.id)).splitlines()
                 if line.startswith("[")}
    gone = {"enum64": {"ENUM64"}, "type_tag": {"TYPE_TAG"}, "decl_tag": {"DECL_TAG"}, "float": {"FLOAT"},
            "datasec": {"VAR", "DATASEC"}, "func": {"FUNC", "FUNC_PROTO"}}
    for feature, ks in gone.items():
        if not getattr(effective, feature):
            assert not (kinds & ks), (feature, kinds)
    # sizes survive sanitisation: struct s keeps its 32 bytes
    assert BTF.from_bytes(clean).find("s").size == 32


def test_probe_features_on_a_current_kernel() -> None:
    f = probe_features()
    # Linux 6.0+ accepts every kind; a missing one here is a failure, not a skip
    import os
    major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    if (major, minor) >= (6, 0):
        assert f.complete, f


def test_rejected_btf_carries_the_kernel_log() -> None:
    b = BTFBuilder()
    b.add_ptr(99)  # dangling type id
    with pytest.raises(BTFLoadError) as ei:
        load_btf(b.encode())
    assert ei.value.errno == 22
    assert "Invalid type_id" in str(ei.value)
    assert "magic: 0xeb9f" in ei.value.log


def test_read_back_loaded_btf_by_id() -> None:
    b, key_id, value_id = event_btf()
    with b.load() as loaded:
        back = BTF.from_id(loaded.id)
        assert back.raw == b.encode()
        assert back[value_id].format_c() == "struct event" and back[value_id].size == 48


def test_vmlinux_btf_object_by_id_equals_sysfs() -> None:
    """The kernel's own BTF object (name "vmlinux") read through bpf() is /sys/kernel/btf/vmlinux."""
    from corebpf.btf.loaded import loaded_btf_info

    vm = BTF.vmlinux()
    for btf_id in ops.iter_ids("btf"):
        try:
            name, kernel, raw = loaded_btf_info(btf_id)
        except BPFError:  # objects come and go while other processes load BPF
            continue
        if kernel and name == "vmlinux":
            assert raw == vm.raw
            assert len(BTF.from_id(btf_id)) == len(vm)
            return
    pytest.fail("no kernel BTF object named vmlinux was found through BPF_BTF_GET_NEXT_ID")
