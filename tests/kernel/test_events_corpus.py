"""Typed events from a clang-built object (tests/corpus/events_ringbuf.bpf.c): the record type comes
from the object's BTF, the maps and programs from corebpf.load, the events from the readers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import corebpf
from corebpf.events import PerfBuffer, Poller, RecordType, RingBuffer, testing as producers

OBJ = Path(__file__).resolve().parent.parent / "corpus" / "events_ringbuf.bpf.o"


@pytest.fixture
def obj():
    with corebpf.load(OBJ) as o:
        yield o


def counts(obj) -> tuple[int, int]:
    raw = obj.maps["counters"].lookup(0)
    value = raw if isinstance(raw, dict) else None
    if value is not None:
        return value["attempted"], value["failed"]
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")


def test_ringbuf_events_typed_by_the_objects_btf(obj):
    rt = RecordType.from_btf(obj.spec.btf, "event")
    assert rt.size == 24 and rt.dtype.names == ("seq", "cpu", "len", "tag")
    cpu = sorted(os.sched_getaffinity(0))[0]
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        with RingBuffer(obj.maps["events"], record_type=rt) as rb:
            obj.programs["produce_ringbuf"].test_run(producers.PACKET, repeat=100)
            with rb.read_batch() as batch:
                values = batch.values()
                assert [v.seq for v in values] == list(range(100))
                # tc programs see the whole frame, Ethernet header included
                assert {(v.cpu, v.len, v.tag) for v in values} == {(cpu, len(producers.PACKET), "ringbuf")}
                arr = batch.array()
                assert arr["seq"].tolist() == list(range(100)) and set(arr["tag"].tolist()) == {b"ringbuf"}
    finally:
        os.sched_setaffinity(0, old)
    assert counts(obj) == (100, 0)


def test_perf_and_ring_events_in_one_poller(obj):
    rt = RecordType.from_btf(obj.spec.btf, "event")
    got: list = []
    with RingBuffer(obj.maps["events"], record_type=rt) as rb, \
            PerfBuffer(obj.maps["perf_events"], pages=2, record_type=rt) as pb, Poller() as poller:
        poller.add(rb, lambda r: got.append(rt.decode(r)))
        poller.add(pb, lambda r: got.append(rt.decode(r)))
        obj.programs["produce_ringbuf"].test_run(producers.PACKET, repeat=10)
        obj.programs["produce_perf"].test_run(producers.PACKET, repeat=10)
        assert poller.poll(1.0) == 20
    assert sorted(v.seq for v in got) == list(range(20))
    assert {v.tag for v in got} == {"ringbuf", "perfbuf"}
    assert counts(obj) == (20, 0)
