"""corebpf.links without the kernel: plan B bookkeeping, close matches, section parsing, probe definitions,
ELF symbol offsets and USDT notes (on binaries built here with gcc, and on the system libc)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from corebpf.errors import CoreBPFError
from corebpf.links import AttachError, Link, LinkError, NeedsTarget, TargetNotFoundError, attach_program
from corebpf.links._elfsym import address_to_offset, function_offset, functions, resolve_binary
from corebpf.links._matches import close_matches
from corebpf.links.auto import _split_probe, _split_uprobe
from corebpf.links.kprobe import kprobe_definition
from corebpf.links.perf_event import _event
from corebpf.links.planb import Method, first_working
from corebpf.links.uprobe import uprobe_definition
from corebpf.links.xdp import _mode_flags


def _ok(name: str) -> Link:
    return Link(f"target {name}", name)


def _fail(msg: str):
    def attach() -> Link:
        raise CoreBPFError(msg)
    return attach


def test_first_working_records_every_attempt_in_order():
    link = first_working("x", [Method("a", _fail("no a")), Method("b", _fail("no b")), Method("c", lambda: _ok("c")),
                               Method("d", lambda: _ok("d"))])
    assert link.method == "c"
    assert [(a.method, a.ok) for a in link.attempts] == [("a", False), ("b", False), ("c", True)]
    assert "no b" in link.attempts[1].reason
    link.close()


def test_first_working_says_why_for_each_when_none_works():
    with pytest.raises(AttachError) as ei:
        first_working("kprobe f", [Method("pmu", _fail("no PMU")), Method("tracefs", _fail("no kprobe_events"))],
                      hint="use a tracepoint")
    text = str(ei.value)
    assert "cannot attach kprobe f" in text and "pmu: no PMU" in text and "tracefs: no kprobe_events" in text
    assert text.endswith("use a tracepoint")
    assert [a.method for a in ei.value.attempts] == ["pmu", "tracefs"]


def test_forced_method_and_unknown_method():
    link = first_working("x", [Method("a", lambda: _ok("a")), Method("b", lambda: _ok("b"))], force="b")
    assert link.method == "b" and [a.method for a in link.attempts] == ["b"]
    with pytest.raises(ValueError, match="choose from a, b"):
        first_working("x", [Method("a", lambda: _ok("a")), Method("b", lambda: _ok("b"))], force="zz")


def test_missing_target_stops_plan_b():
    def missing() -> Link:
        raise TargetNotFoundError("tracepoint", "sys/x", ["sys/y"])
    calls = []
    with pytest.raises(TargetNotFoundError, match="did you mean: sys/y"):
        first_working("x", [Method("a", missing), Method("b", lambda: calls.append(1) or _ok("b"))])
    assert not calls


def test_link_cleanups_run_newest_first_last_after_all_and_once():
    order: list[str] = []
    link = Link("t", "m", None, [lambda: order.append("first")])
    link.add_cleanup(lambda: order.append("second"))
    link.add_cleanup(lambda: order.append("very last"), last=True)
    with link:
        pass
    link.close()
    assert order == ["second", "first", "very last"]
    assert link.closed


def test_link_cleanup_failure_still_runs_the_rest():
    order: list[str] = []

    def boom() -> None:
        raise OSError("boom")
    link = Link("t", "m", None, [lambda: order.append("a"), boom])
    with pytest.raises(OSError):
        link.close()
    assert order == ["a"]


def test_non_link_attachment_cannot_pin_or_update():
    link = Link("xdp veth0", "netlink")
    with pytest.raises(LinkError, match="netlink, not a BPF link"):
        link.pin("/sys/fs/bpf/x")
    with pytest.raises(LinkError):
        link.update(3)
    with pytest.raises(LinkError):
        link.fileno()


def test_close_matches():
    names = ["sys_enter_getpgid", "sys_enter_getpid", "sys_enter_setpgid", "sched_switch"]
    assert close_matches("sys_enter_getpgidd", names)[0] == "sys_enter_getpgid"
    assert close_matches("switch", names) == ["sched_switch"]  # substring when difflib finds nothing
    assert close_matches("zzzz", names) == []


def test_target_not_found_message():
    e = TargetNotFoundError("network interface", "vethx", ["veth0", "veth1"], "this network namespace")
    assert str(e) == ("network interface 'vethx' not found in this network namespace; did you mean: veth0, veth1?")
    assert isinstance(e, LookupError) and e.matches == ["veth0", "veth1"]
    assert "no similar names" in str(TargetNotFoundError("cgroup", "/x", []))


def test_section_target_parsing():
    assert _split_probe("do_sys_openat2", "kprobe") == ("do_sys_openat2", 0)
    assert _split_probe("do_sys_openat2+0x10", "kprobe") == ("do_sys_openat2", 16)
    assert _split_uprobe("/usr/bin/bash:readline") == ("/usr/bin/bash", "readline", 0)
    assert _split_uprobe("libc.so.6:malloc+4") == ("libc.so.6", "malloc", 4)
    assert _split_uprobe("/bin/x:0x1234") == ("/bin/x", None, 0x1234)
    with pytest.raises(CoreBPFError):
        _split_uprobe("noseparator")


@pytest.mark.parametrize("section,needs", [("xdp", "interface="), ("tc/ingress", "interface="),
                                           ("cgroup_skb/egress", "cgroup="), ("socket", "sock="),
                                           ("perf_event", "event="), ("sk_skb/stream_verdict", "map="),
                                           ("tracepoint", "tracepoint="), ("kprobe", "function=")])
def test_sections_without_targets_say_what_they_need(section, needs):
    with pytest.raises(NeedsTarget, match=needs):
        attach_program(object(), section)


def test_unknown_section():
    with pytest.raises(CoreBPFError, match="unknown section"):
        attach_program(object(), "nonsense_section/x")


def test_probe_definitions():
    assert kprobe_definition("do_sys_openat2") == "p:{name} do_sys_openat2"
    assert kprobe_definition("f", 8) == "p:{name} f+8"
    assert kprobe_definition("f", retprobe=True, maxactive=16) == "r16:{name} f"
    assert uprobe_definition("/bin/x", 0x1234) == "p:{name} /bin/x:0x1234"
    assert uprobe_definition("/bin/x", 0x10, True, 0x2000) == "r:{name} /bin/x:0x10(0x2000)"


def test_perf_event_names_and_xdp_modes():
    assert _event("cpu-clock") == (1, 0)
    assert _event("page_faults") == (1, 2)
    assert _event("cpu-cycles") == (0, 0)
    assert _event((4, 0x1234)) == (4, 0x1234)
    with pytest.raises(TargetNotFoundError):
        _event("cpu-clok")
    assert _mode_flags(None) == 0 and _mode_flags("skb") == 2 and _mode_flags("drv") == 4
    with pytest.raises(ValueError):
        _mode_flags("turbo")


def test_address_to_offset():
    loads = [(0, 0x1000, 0), (0x401000, 0x2000, 0x1000)]
    assert address_to_offset(loads, 0x401234) == 0x1234
    assert address_to_offset(loads, 0x900000) is None


def test_libc_symbol_offsets_match_nm():
    if shutil.which("nm") is None:
        pytest.skip("nm not installed")
    libc = resolve_binary("libc.so.6")
    assert os.path.isabs(libc)
    out = subprocess.run(["nm", "-D", "--defined-only", libc], capture_output=True, text=True, check=True).stdout
    addrs = {line.split()[2].split("@")[0]: int(line.split()[0], 16) for line in out.splitlines()
             if len(line.split()) == 3 and line.split()[1] in "TtiW"}
    syms = functions(libc)
    for name in ("getpgid", "malloc", "write"):
        assert syms[name].address == addrs[name]
        assert function_offset(libc, name) == syms[name].offset
    with pytest.raises(TargetNotFoundError) as ei:
        function_offset(libc, "mallocc")
    assert "malloc" in ei.value.matches


def test_library_and_program_name_resolution():
    assert resolve_binary("c").endswith(".so.6") or ".so" in resolve_binary("c")
    assert os.path.isabs(resolve_binary("sh"))
    with pytest.raises(TargetNotFoundError):
        resolve_binary("/nonexistent/dir/prog")
    with pytest.raises(TargetNotFoundError):
        resolve_binary("libcorebpf-no-such-lib.so")


USDT_C = r"""
unsigned short sem __attribute__((section(".probes"), used));
int main(int argc, char **argv) {
    __asm__ __volatile__ (
        "990: nop\n"
        ".pushsection .note.stapsdt,\"\",\"note\"\n.balign 4\n.4byte 992f-991f, 994f-993f, 3\n"
        "991: .asciz \"stapsdt\"\n992: .balign 4\n993: .8byte 990b\n.8byte _.stapsdt.base\n.8byte sem\n"
        ".asciz \"app\"\n.asciz \"started\"\n.asciz \"-4@%0\"\n994: .balign 4\n.popsection\n"
        ".ifndef _.stapsdt.base\n.pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"
        ".weak _.stapsdt.base\n.hidden _.stapsdt.base\n_.stapsdt.base: .space 1\n.size _.stapsdt.base, 1\n"
        ".popsection\n.endif\n" :: "nor"(argc));
    return 0;
}
"""


def test_usdt_notes_parsed(tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    from corebpf.links.usdt import probes

    (tmp_path / "u.c").write_text(USDT_C)
    exe = str(tmp_path / "u")
    subprocess.run(["gcc", "-O1", "-o", exe, str(tmp_path / "u.c")], check=True)
    (p,) = probes(exe)
    assert (p.provider, p.name) == ("app", "started")
    assert p.args.startswith("-4@")
    assert p.semaphore_offset > 0 and p.offset > 0
    with open(exe, "rb") as f:  # the probe offset points at the nop the note names
        f.seek(p.offset)
        assert f.read(1) == b"\x90"
    assert probes("/bin/true" if os.path.exists("/bin/true") else exe) in ([], [p])


def test_usdt_argument_specs_x86():
    from corebpf.links.usdt import ARG_CONST, ARG_REG, ARG_REG_DEREF, encode_spec, parse_args

    a, b, c, d = parse_args("-4@%edi 8@-8(%rbp) 4@$5 2@(%rax)")
    assert (a.kind, a.reg_off, a.signed, a.size) == (ARG_REG, 112, True, 4)
    assert (b.kind, b.reg_off, b.val_off, b.signed) == (ARG_REG_DEREF, 32, -8, False)
    assert (c.kind, c.val_off) == (ARG_CONST, 5)
    assert (d.kind, d.reg_off, d.val_off, d.size) == (ARG_REG_DEREF, 80, 0, 2)
    assert a.encode() == (0).to_bytes(8, "little") + bytes([1, 0, 0, 0, 112, 0, 1, 32])
    raw = encode_spec([a, b], 7)
    assert len(raw) == 208 and raw[192:200] == (7).to_bytes(8, "little") and raw[200:202] == b"\x02\x00"
    with pytest.raises(CoreBPFError):
        parse_args("3@%edi")
    with pytest.raises(CoreBPFError):
        parse_args("4@%xmm0")
    with pytest.raises(CoreBPFError):
        parse_args("garbage")


@pytest.mark.parametrize("section,why", [("xdp/devmap", "devmap"), ("syscall", "test_run"),
                                         ("struct_ops/x", "struct_ops"), ("sk_reuseport", "sock=")])
def test_sections_attached_elsewhere_say_how(section, why):
    with pytest.raises(CoreBPFError, match=why):
        attach_program(object(), section)


def test_public_api_contract():
    """Every public name is documented; attach functions take the program first."""
    import inspect

    from corebpf import links

    for name in links.__all__:
        obj = getattr(links, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
        if inspect.isfunction(obj) and name not in ("attach_all", "fallback", "btf_target", "load_tracing", "struct_ops",
                                                     "remove_probe_events"):
            first = next(iter(inspect.signature(obj).parameters))
            assert first == "program", f"{name}({first}, ...)"
        if inspect.isfunction(obj):
            hints = obj.__annotations__
            assert "return" in hints, f"{name} has no return annotation"
