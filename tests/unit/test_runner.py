"""corebpf.runner without a kernel: trace_pipe lines, option parsing, JSON and text output."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from corebpf.btf.values import EnumMember, StructValue
from corebpf.cli.run import parse_assignment
from corebpf.errors import CoreBPFError
from corebpf.runner import Event, Lost, TraceLine, TracePipe, parse_trace_line, parse_type_options
from corebpf.runner.format import item_to_json, item_to_text, value_to_text


@pytest.mark.parametrize("line, comm, pid, cpu, ts, msg", [
    ("         python3-7852    [000] ...21  4402.144367: bpf_trace_printk: hello pid=1",
     "python3", 7852, 0, 4402.144367, "hello pid=1"),
    ("  kworker/u8:1-123     (    123) [003] d..2.   12.500000: bpf_trace_printk: with tgid column",
     "kworker/u8:1", 123, 3, 12.5, "with tgid column"),
    ("  my-comm-with-dashes-99 [001]   7.000001: bpf_trace_printk: no flags",
     "my-comm-with-dashes", 99, 1, 7.000001, "no flags"),
    ("           <...>-5 [002] ..... 1.000000: bpf_trace_printk: ", "<...>", 5, 2, 1.0, ""),
])
def test_parse_trace_line(line: str, comm: str, pid: int, cpu: int, ts: float, msg: str) -> None:
    t = parse_trace_line(line)
    assert (t.comm, t.pid, t.cpu, t.timestamp, t.message, t.event) == (comm, pid, cpu, ts, msg, "bpf_trace_printk")
    assert t.line == line


def test_unparsable_trace_line_keeps_the_text() -> None:
    t = parse_trace_line("CPU:2 [LOST 12 EVENTS]")
    assert t.message == "CPU:2 [LOST 12 EVENTS]" and t.pid is None and t.cpu is None


def test_trace_pipe_reads_complete_lines_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer_ready = threading.Event()
    holder: list[int] = []

    def open_writer() -> None:
        holder.append(os.open(fifo, os.O_WRONLY))
        writer_ready.set()

    threading.Thread(target=open_writer).start()
    with TracePipe(str(fifo)) as tp:
        writer_ready.wait(5)
        wfd = holder[0]
        try:
            assert tp.read_lines() == []
            os.write(wfd, b"  a-1 [000] .... 1.000000: bpf_trace_printk: one\n  b-2 [001] .... 2.0")
            lines = tp.read_lines()
            assert [t.message for t in lines] == ["one"]
            os.write(wfd, b"00000: bpf_trace_printk: two\n")
            assert [(t.comm, t.message) for t in tp.read_lines()] == [("b", "two")]
        finally:
            os.close(wfd)
    assert tp.closed
    with pytest.raises(ValueError):
        tp.fileno()


def test_trace_pipe_missing_path_is_a_corebpf_error(tmp_path: Path) -> None:
    with pytest.raises(CoreBPFError, match="cannot open"):
        TracePipe(str(tmp_path / "nope"))


def test_parse_type_options() -> None:
    assert parse_type_options(["events=event", "struct data"]) == {"events": "event", "*": "struct data"}
    assert parse_type_options(["rb = struct x "]) == {"rb": "struct x"}
    for bad in ("=event", "events=", " "):
        with pytest.raises(CoreBPFError, match="--type"):
            parse_type_options([bad])


def test_parse_assignment() -> None:
    assert parse_assignment("pid=1234") == ("pid", 1234)
    assert parse_assignment("mask=0x10") == ("mask", 16)
    assert parse_assignment("on=TRUE") == ("on", True)
    assert parse_assignment("name=eth0") == ("name", "eth0")
    with pytest.raises(CoreBPFError, match="NAME=VALUE"):
        parse_assignment("novalue")


def _event() -> StructValue:
    inner = StructValue(a=1, b=2, type_name="struct inner")
    return StructValue(pid=42, comm="bash", source=EnumMember(1, "SOURCE_RING", "enum s"),
                       odd=EnumMember(9, None, "enum s"), inner=inner, arr=np.array([1, 2], dtype=np.uint8),
                       blob=b"\x01\xff", type_name="struct event")


def test_event_json() -> None:
    out = item_to_json(Event("perf_events", _event(), cpu=3, type_name="struct event"))
    assert out == {"map": "perf_events", "cpu": 3, "type": "struct event",
                   "event": {"pid": 42, "comm": "bash", "source": "SOURCE_RING", "odd": 9,
                             "inner": {"a": 1, "b": 2}, "arr": [1, 2], "blob": "01ff"}}
    json.dumps(out)
    assert item_to_json(Event("events", b"\x2a\x00")) == {"map": "events", "raw": "2a00"}
    assert item_to_json(Lost("perf_events", 17, 2)) == {"map": "perf_events", "cpu": 2, "lost": 17}
    t = item_to_json(parse_trace_line("  a-1 [000] .... 1.500000: bpf_trace_printk: hi"))
    assert t["trace"] == "hi" and t["pid"] == 1 and t["ts"] == 1.5 and t["line"].endswith("hi")
    with pytest.raises(TypeError):
        item_to_json("nope")  # type: ignore[arg-type]


def test_event_text() -> None:
    text = item_to_text(Event("events", _event(), type_name="struct event"), clock=False)
    assert text == "events: pid=42 comm=bash source=SOURCE_RING odd=9 inner={a=1 b=2} arr=[1, 2] blob=01ff"
    assert item_to_text(Event("perf_events", b"\x01", cpu=1), clock=False) == "perf_events[cpu 1]: 1 bytes 01"
    assert "17 samples lost" in item_to_text(Lost("perf_events", 17, 0), clock=False)
    line = item_to_text(parse_trace_line("  a-1 [002] .... 1.500000: bpf_trace_printk: hi there"), clock=False)
    assert line == "trace: a-1 [002] hi there"
    assert item_to_text(TraceLine("raw", "raw"), clock=False) == "trace: raw"
    assert value_to_text(StructValue(s="two words")) == "s='two words'"
    assert len(item_to_text(Event("events", b""), clock=True).split(" ", 1)[0]) == 8  # HH:MM:SS


def test_parse_targets() -> None:
    from corebpf.cli.run import parse_targets

    progs = ["xdp_a", "tc_b"]
    assert parse_targets(["xdp_a.interface=eth0", "mode=skb"], progs) == {
        "xdp_a": {"interface": "eth0", "mode": "skb"}, "tc_b": {"mode": "skb"}}
    assert parse_targets(["tc_b.pid=0x10"], progs) == {"tc_b": {"pid": 16}}
    with pytest.raises(CoreBPFError, match="no program 'nope'"):
        parse_targets(["nope.interface=lo"], progs)
