"""uprobe / uretprobe / USDT / uprobe.multi on a tiny C program compiled here, and on libc with a pid filter."""

from __future__ import annotations

import subprocess

import pytest

from corebpf import features, links
from corebpf.links._elfsym import function_offset, functions
from corebpf.links.usdt import probes
from test_links_util import c_binary, count, counting_program, reset

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

unsigned short corebpf_tick_semaphore __attribute__((section(".probes"), used));

__attribute__((noinline)) int corebpf_target(int x) { asm volatile(""); return x + 1; }
__attribute__((noinline)) int corebpf_other(int x) { asm volatile(""); return x * 2; }

static void usdt_tick(int v) {
    __asm__ __volatile__ (
        "990: nop\n"
        ".pushsection .note.stapsdt,\"\",\"note\"\n"
        ".balign 4\n"
        ".4byte 992f-991f, 994f-993f, 3\n"
        "991: .asciz \"stapsdt\"\n"
        "992: .balign 4\n"
        "993: .8byte 990b\n"
        ".8byte _.stapsdt.base\n"
        ".8byte corebpf_tick_semaphore\n"
        ".asciz \"corebpf\"\n"
        ".asciz \"tick\"\n"
        ".asciz \"-4@%0\"\n"
        "994: .balign 4\n"
        ".popsection\n"
        ".ifndef _.stapsdt.base\n"
        ".pushsection .stapsdt.base,\"aG\",\"progbits\",.stapsdt.base,comdat\n"
        ".weak _.stapsdt.base\n"
        ".hidden _.stapsdt.base\n"
        "_.stapsdt.base: .space 1\n"
        ".size _.stapsdt.base, 1\n"
        ".popsection\n"
        ".endif\n" :: "nor"(v));
}

int main(void) {
    char line[64];
    int acc = 0;
    while (fgets(line, sizeof line, stdin)) {
        int n = atoi(line);
        for (int i = 0; i < n; i++) {
            acc += corebpf_target(i) + corebpf_other(i);
            usdt_tick(i);
            getpgid(0);
        }
        printf("%d %u\n", acc, (unsigned)corebpf_tick_semaphore);
        fflush(stdout);
    }
    return 0;
}
"""


class Target:
    """The compiled program running as a child: ``run(n)`` makes it call each probe point ``n`` times."""

    def __init__(self, exe: str) -> None:
        self.exe = exe
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def run(self, n: int) -> int:
        """Returns the USDT semaphore value the child saw."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[1])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def exe():
    with c_binary(SOURCE, "corebpf_uprobe_target") as path:
        yield path


@pytest.fixture
def target(exe):
    t = Target(exe)
    try:
        yield t
    finally:
        t.close()


def test_symbol_resolution_matches_nm(exe):
    out = subprocess.run(["nm", exe], capture_output=True, text=True, check=True).stdout
    addr = next(int(line.split()[0], 16) for line in out.splitlines() if line.endswith(" corebpf_target"))
    sym = functions(exe)["corebpf_target"]
    assert sym.address == addr
    assert function_offset(exe, "corebpf_target") == sym.offset  # PIE: offset == vaddr for the first segment maps


def test_uprobe_counts_and_stops(exe, target):
    with counting_program("kprobe") as (p, m):
        with links.uprobe(p, exe, "corebpf_target") as link:
            assert link.method.startswith("uprobe_pmu")
            target.run(7)
            assert count(m) == 7
        target.run(5)
        assert count(m) == 7


def test_uretprobe_and_offset(exe, target):
    with counting_program("kprobe") as (p, m):
        with links.uretprobe(p, exe, "corebpf_other"):
            target.run(4)
            assert count(m) == 4
        reset(m)
        off = function_offset(exe, "corebpf_target")
        with links.uprobe(p, exe, None, off):  # raw file offset
            target.run(3)
            assert count(m) == 3


def test_uprobe_pid_filter_on_libc(exe, target):
    import os

    with counting_program("kprobe") as (p, m):
        with links.uprobe(p, "libc.so.6", "getpgid", pid=target.pid) as link:
            assert "pid" in link.target
            for _ in range(50):
                os.getpgid(0)  # our own calls must not count
            target.run(6)
            assert count(m) == 6


def test_usdt_discovery_semaphore_and_attach(exe, target):
    found = probes(exe)
    assert [(p.provider, p.name) for p in found] == [("corebpf", "tick")]
    assert found[0].semaphore_offset > 0 and found[0].args.startswith("-4@")
    with counting_program("kprobe") as (p, m):
        assert target.run(1) == 0  # semaphore off while nobody listens
        with links.usdt(p, exe, "corebpf", "tick") as link:
            assert target.run(5) == 1  # the kernel raised the semaphore for us
            assert count(m) == 5
            assert "1 locations" in link.target
        assert target.run(2) == 0
        assert count(m) == 5


def test_uprobe_multi_or_per_location_fallback(exe, target):
    with counting_program("kprobe") as (p, m):
        link = links.uprobe_multi(p, exe, ["corebpf_target", "corebpf_other"])
        with link:
            # a program loaded without TRACE_UPROBE_MULTI is refused by uprobe.multi: plan B is used
            tried = [a.method for a in link.attempts]
            assert tried[-1] in ("uprobe_multi", "per_location")
            target.run(3)
            assert count(m) == 6
        target.run(3)
        assert count(m) == 6
    if not features.attach_method("uprobe_multi").supported:
        return
    with counting_program("kprobe", expected_attach_type="trace_uprobe_multi") as (p, m):
        with links.uprobe_multi(p, exe, ["corebpf_*"]) as link:
            assert link.method == "bpf_link"
            target.run(2)
            assert count(m) == 4


def test_uprobe_tracefs_plan_b_or_clear_error(exe, target):
    with counting_program("kprobe") as (p, m):
        try:
            link = links.uprobe(p, exe, "corebpf_target", method="tracefs")
        except links.AttachError as exc:
            assert "uprobe_events" in str(exc)
            return
        import os

        from corebpf.links._tracefs import our_probe_events

        mine = f"_{os.getpid()}_"
        with link:
            assert link.method.startswith("tracefs")
            assert [ln for ln in our_probe_events("uprobe_events") if mine in ln]
            target.run(4)
            assert count(m) == 4
        assert not [ln for ln in our_probe_events("uprobe_events") if mine in ln]  # no entry left behind
        target.run(2)
        assert count(m) == 4


def test_missing_symbol_lists_close_matches(exe):
    with counting_program("kprobe") as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.uprobe(p, exe, "corebpf_targt")
        assert "corebpf_target" in ei.value.matches
        with pytest.raises(links.TargetNotFoundError):
            links.uprobe(p, exe + "x", "corebpf_target")
        with pytest.raises(links.TargetNotFoundError, match="corebpf:tick"):
            links.usdt(p, exe, "corebpf", "tock")


def test_usdt_arguments_through_libbpf_usdt_header(exe, target):
    """tests/corpus/links_usdt.bpf.o uses BPF_USDT(on_tick, int v): its argument reaches the program
    only if the spec map and the per-location cookie are right."""
    from pathlib import Path

    import corebpf

    if not features.attach_method("bpf_cookie").supported:
        pytest.skip("USDT arguments are passed through BPF cookies (Linux >= 5.15)")
    spec = corebpf.ObjectSpec.from_file(Path(__file__).parents[1] / "corpus" / "links_usdt.bpf.o")
    spec.programs["on_tick"].section = f"usdt/{exe}:corebpf:tick"
    with spec.load() as obj:
        report = links.attach_all(obj, {"on_tick": {"cookie": 42}})
        try:
            target.run(5)  # usdt_tick(i) for i in 0..4
            assert obj.variables["calls"] == 5
            assert obj.variables["total"] == 0 + 1 + 2 + 3 + 4
            assert obj.variables["cookie_seen"] == 42
        finally:
            report.close()
        target.run(3)
        assert obj.variables["calls"] == 5


def test_tracefs_uprobe_with_pid_filter(exe, target):
    import os

    with counting_program("kprobe") as (p, m):
        try:
            link = links.uprobe(p, "libc.so.6", "getpgid", pid=target.pid, method="tracefs")
        except links.AttachError as exc:
            assert "uprobe_events" in str(exc)
            return
        with link:
            for _ in range(20):
                os.getpgid(0)
            target.run(4)
            assert count(m) == 4


def test_pinned_tracefs_uprobe_keeps_its_event_until_unpinned(exe, target):
    import os
    import time
    import uuid

    from corebpf.links._tracefs import our_probe_events, remove_probe_events
    from corebpf.node.mounts import ensure_mounted

    mine = f"_{os.getpid()}_"
    pin = os.path.join(ensure_mounted("bpffs"), f"corebpf-uprobe-{uuid.uuid4().hex[:8]}")
    with counting_program("kprobe") as (p, m):
        try:
            link = links.uprobe(p, exe, "corebpf_target", method="tracefs")
        except links.AttachError as exc:
            pytest.skip(f"no tracefs uprobes: {exc}")
        try:
            if link.fd is None:
                link.close()
                pytest.skip("perf links need Linux >= 5.15")
            link.pin(pin)
            link.close()  # returns at once: the pinned link still needs the event
            assert [ln for ln in our_probe_events("uprobe_events") if mine in ln]
            target.run(2)
            assert count(m) == 2
        finally:
            if os.path.exists(pin):
                os.unlink(pin)
        removed = []
        for _ in range(200):  # the kernel frees the perf event after an RCU grace period
            removed += remove_probe_events(os.getpid())
            if not [ln for ln in our_probe_events("uprobe_events") if mine in ln]:
                break
            time.sleep(0.01)
        assert removed and not [ln for ln in our_probe_events("uprobe_events") if mine in ln]


def test_usdt_arguments_by_address_without_cookies(exe, target):
    """The pre-5.15 path, forced here: the object is loaded with LINUX_HAS_BPF_COOKIE=n so usdt.bpf.h looks
    its spec up by instruction address, which we compute from the child's mapping of the (PIE) binary."""
    from pathlib import Path

    import corebpf
    from corebpf.loader import load_spec

    spec = corebpf.ObjectSpec.from_file(Path(__file__).parents[1] / "corpus" / "links_usdt.bpf.o")
    spec.programs["on_tick"].section = f"usdt/{exe}:corebpf:tick"
    with load_spec(spec, kconfig={"LINUX_HAS_BPF_COOKIE": "n"}) as obj:
        with pytest.raises(corebpf.CoreBPFError, match="pid="):
            links.attach_all(obj, {"on_tick": {"use_cookie": False}})
        report = links.attach_all(obj, {"on_tick": {"use_cookie": False, "pid": target.pid, "cookie": 7}})
        try:
            target.run(4)
            assert obj.variables["calls"] == 4
            assert obj.variables["total"] == 0 + 1 + 2 + 3
            assert obj.variables["cookie_seen"] == 7
            assert len(obj.maps["__bpf_usdt_ip_to_spec_id"]) == 1
        finally:
            report.close()
        assert len(obj.maps["__bpf_usdt_ip_to_spec_id"]) == 0
