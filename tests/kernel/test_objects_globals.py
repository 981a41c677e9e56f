"""Global variables: const volatile set on the spec before load and observed by the program (test_run),
live .data/.bss reads and writes, frozen .rodata, kconfig and ksym externs resolved from this kernel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import corebpf
from corebpf.elf import ObjectSpec
from corebpf.loader.externs import kernel_version_code
from corebpf.node.kconfig import load_kconfig

from kernel_rules import skip_if_older

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PKT = bytes(64)
XDP_PASS, XDP_DROP = 2, 1


def test_const_volatile_set_before_load_reaches_the_program():
    spec = ObjectSpec.from_file(CORPUS / "obj_globals.bpf.o")
    spec.variables["target_port"] = 443
    spec.variables["cookie"] = 0x1234
    spec.variables["run_mode"] = 2  # MODE_DROP
    spec.variables["bounds"] = {"lo": 1, "hi": 65535}
    spec.variables["label"] = "custom"
    spec.variables["custom_ro"] = 99
    assert spec.variables["target_port"] == 443
    with spec.load() as obj:
        res = obj.programs["globals_xdp"].test_run(PKT)
        assert res.return_value == XDP_DROP
        seen = obj.variables["seen"]
        assert (seen.port, seen.mode, seen.cookie, seen.lo, seen.hi, seen.custom_ro, seen.calls, seen.label) == \
            (443, 2, 0x1234, 1, 65535, 99, 1, "custom")
        # the frozen .rodata still reads back what was set
        assert obj.variables["target_port"] == 443
        with pytest.raises(TypeError, match="frozen"):
            obj.variables["target_port"] = 1


def test_default_values_without_edits():
    with corebpf.load(CORPUS / "obj_globals.bpf.o") as obj:
        assert obj.programs["globals_xdp"].test_run(PKT).return_value == XDP_PASS
        seen = obj.variables["seen"]
        assert (seen.port, seen.mode, seen.lo, seen.hi, seen.label) == (80, 1, 10, 20, "default")
        assert obj.variables["cookie"] == 0xDEADBEEFCAFEF00D


def test_data_and_bss_are_live():
    with corebpf.load(CORPUS / "obj_globals.bpf.o") as obj:
        prog = obj.programs["globals_xdp"]
        assert obj.variables["counter"] == 5 and obj.variables["custom_rw"] == 11
        prog.test_run(PKT)
        assert obj.variables["counter"] == 6 and obj.variables["custom_rw"] == 13
        obj.variables["counter"] = 100
        obj.variables["custom_rw"] = 1000
        prog.test_run(PKT, repeat=3)
        assert obj.variables["counter"] == 103 and obj.variables["custom_rw"] == 1006
        obj.variables["seen"] = {"port": 7, "mode": 0, "cookie": 0, "lo": 0, "hi": 0, "custom_ro": 0, "calls": 0,
                                 "label": ""}
        assert obj.variables["seen"].port == 7
        # the same bytes through the map: one array element holding the whole section
        raw = obj.maps[".data"][0]
        assert int.from_bytes(raw[:8], "little") == 103
        # the static variable counts calls
        assert obj.variables["calls"] == 4


def test_kconfig_externs_from_this_kernel():
    kc = load_kconfig()
    with corebpf.load(CORPUS / "obj_kconfig.bpf.o") as obj:
        obj.programs["kconfig_read"].test_run(PKT)
        seen = obj.variables["seen"]
        assert seen.version == kernel_version_code()
        assert seen.missing == 0  # __weak and absent
        if kc.available:
            assert seen.bpf_syscall == (kc.get("BPF_SYSCALL") == "y")
            assert seen.bpf_jit == {"y": 1, "m": 2}.get(kc.get("BPF_JIT") or "n", 0)
            assert seen.bpf_events == ord(kc.get("BPF_EVENTS") or "n")
            if kc.get("HZ"):
                assert seen.hz == int(kc.get("HZ"))
            if kc.get("NR_CPUS"):
                assert seen.nr_cpus == int(kc.get("NR_CPUS"))
        # the kconfig map is frozen and its externs read as variables
        assert obj.variables["LINUX_KERNEL_VERSION"] == kernel_version_code()


def test_kconfig_override():
    with corebpf.load(CORPUS / "obj_kconfig.bpf.o", kconfig={"CONFIG_HZ": "1234", "CONFIG_BPF_EVENTS": "m"}) as obj:
        obj.programs["kconfig_read"].test_run(PKT)
        assert obj.variables["seen"].hz == 1234
        assert obj.variables["seen"].bpf_events == ord("m")


@pytest.mark.parametrize("name, prog", [
    # typeless and weak ksyms (a guarded call to a missing weak kfunc): every kernel
    ("obj_ksyms_weak.bpf.o", "ksyms_weak_read"),
    # the same, beside calls to the bpf_rcu_read_lock/unlock kfuncs: Linux 6.2+
    ("obj_ksyms.bpf.o", "ksyms_read"),
])
def test_ksyms_typeless_and_weak(name: str, prog: str):
    if name == "obj_ksyms.bpf.o":
        skip_if_older("kfuncs", "bpf_rcu_read_lock")
    addr = None
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[2] == "schedule":
                addr = int(parts[0], 16)
                break
    if not addr:
        pytest.skip("kallsyms hides addresses here (kptr_restrict): typeless ksyms resolve to 0")
    with corebpf.load(CORPUS / name) as obj:
        obj.programs[prog].test_run(ctx=bytes(16))
        assert obj.variables["schedule_addr"] == addr
        assert obj.variables["missing_addr"] == 0
        assert obj.variables["kfunc_missing"] == 1  # bpf_ksym_exists-style guard saw the weak kfunc absent


def test_variables_of_a_closed_object():
    obj = corebpf.load(CORPUS / "obj_globals.bpf.o")
    obj.close()
    with pytest.raises(ValueError):
        obj.variables["counter"]
    assert obj.closed and os.path.exists(CORPUS / "obj_globals.bpf.o")
