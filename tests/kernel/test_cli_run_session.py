"""``corebpf.runner.Session`` in this process (the engine under ``corebpf run``): links exist only
while the session is open, stop() ends a long wait at once, and detach-then-drain hands out every
record the program sent (counted by the program itself)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import corebpf
from corebpf.elf.objectspec import ObjectSpec
from corebpf.inventory.walk import all_links
from corebpf.runner import Event, Lost, Session, TraceLine, uses_printk

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PID = os.getpid()


def load_ours() -> corebpf.Object:
    spec = ObjectSpec.from_file(CORPUS / "run_events.bpf.o")
    spec.variables["target_tgid"] = PID
    return spec.load()


def links_of(prog_id: int) -> list[int]:
    return [lk.id for lk in all_links() if lk.prog_id == prog_id]


def test_every_record_sent_is_handed_out_and_close_detaches() -> None:
    with load_ours() as obj:
        prog = obj.programs["on_getpgid"]
        with Session(obj) as session:
            assert set(session.buffers) == {"events", "perf_events"}
            assert {n: rt.name for n, rt in session.record_types.items()} == {"events": "struct event",
                                                                              "perf_events": "struct event"}
            assert session.trace is not None and uses_printk(obj)
            assert links_of(prog.id), "not linked while the session is open"
            calls = 25
            for _ in range(calls):
                os.getpgid(0)
            session.stop()  # before reading: detach, then drain, must still give everything
            items = list(session.items(interval=0.2))
            assert links_of(prog.id) == [], "stop did not detach"
        sent = obj.variables["sent"]
        assert sent == calls
        ring = [i for i in items if isinstance(i, Event) and i.map == "events"]
        perf = [i for i in items if isinstance(i, Event) and i.map == "perf_events"]
        lost = sum(i.count for i in items if isinstance(i, Lost))
        assert [e.value.seq for e in ring] == list(range(calls))
        assert len(perf) + lost == calls and all(e.cpu is not None for e in perf)
        assert {e.value.tgid for e in ring + perf} == {PID}
        assert str(ring[0].value.source) == "SOURCE_RING" and str(perf[0].value.source) == "SOURCE_PERF"
        traces = [i for i in items if isinstance(i, TraceLine) and f"tgid={PID} " in i.message]
        # trace_pipe is shared by the whole host (another reader may take lines): all of ours at most
        assert 1 <= len(traces) <= calls and traces[0].event == "bpf_trace_printk"
        assert session.counts["events"] == len(ring) + len(perf)
        assert open_prog(prog.id), "closing the session must not unload the caller's object"
    assert links_of(prog.id) == []


def open_prog(prog_id: int) -> bool:
    from corebpf.inventory.walk import open_by_id

    fd = open_by_id("prog", prog_id)
    if fd is None:
        return False
    fd.close()
    return True


def test_stop_from_another_thread_ends_a_long_wait() -> None:
    with load_ours() as obj, Session(obj, trace=False) as session:
        assert session.trace is None
        timer = threading.Timer(0.3, session.stop)
        start = time.monotonic()
        timer.start()
        try:
            assert list(session.items(interval=30)) == []
        finally:
            timer.cancel()
        assert time.monotonic() - start < 5
        assert session.stopped


def test_duration_ends_items() -> None:
    with load_ours() as obj, Session(obj, trace=False) as session:
        start = time.monotonic()
        list(session.items(duration=0.5, interval=5))
        assert 0.4 < time.monotonic() - start < 5


def test_programs_needing_a_target_are_skipped_with_why() -> None:
    with corebpf.load(CORPUS / "xdp.bpf.o") as obj, Session(obj) as session:
        assert session.links.links == {}
        assert session.links.skipped and all("interface" in why for why in session.links.skipped.values())
        assert session.buffers == {}


def test_explicit_type_errors_and_no_leftovers() -> None:
    from corebpf.errors import CoreBPFError

    with load_ours() as obj:
        prog_id = obj.programs["on_getpgid"].id
        with pytest.raises(CoreBPFError, match="perf_events"):
            Session(obj, types={"nope": "event"})
        with pytest.raises(CoreBPFError, match="struct event"):
            Session(obj, types={"events": "missing"})
        assert links_of(prog_id) == []
        with Session(obj, types={"*": "struct event"}, trace=False) as session:
            assert all(rt is not None and rt.size == 40 for rt in session.record_types.values())


def test_sessions_leak_no_fds() -> None:
    from corebpf.errors import CoreBPFError

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with load_ours() as obj:
        with Session(obj) as s:  # warm caches (features, tracefs mount lookup)
            list(s.items(duration=0))
        before = fds()
        for _ in range(20):
            with Session(obj) as s:
                os.getpgid(0)
                list(s.items(duration=0))
            with pytest.raises(CoreBPFError):
                Session(obj, types={"events": "missing"})
        assert fds() == before
