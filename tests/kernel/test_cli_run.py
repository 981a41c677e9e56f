"""``corebpf run`` against the real kernel: a subprocess runs tests/corpus/run_events.bpf.o (a
getpgid tracepoint writing `struct event` into a ring buffer and a perf buffer, plus bpf_printk)
while this process calls getpgid(); events must carry our pid and comm, the printk line must come
through trace_pipe, every stop (duration, count, SIGINT, SIGTERM) must exit 0 and leave none of the
object's programs or links behind; bad input exits 1 with one line and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from corebpf.inventory.walk import all_links, open_by_id

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
OBJ = CORPUS / "run_events.bpf.o"
CLI = [str(Path(sys.executable).with_name("corebpf"))]
if not os.path.exists(CLI[0]):
    CLI = [sys.executable, "-c", "from corebpf.cli.main import main; main()"]
PID = os.getpid()
COMM = Path("/proc/self/comm").read_text().strip()


def corebpf(*args: str) -> list[str]:
    return [*CLI, "run", str(OBJ), "--set", f"target_tgid={PID}", *args]


def gone(prog_id: int, timeout: float = 5.0) -> bool:
    """True once program ``prog_id`` is freed (the kernel frees it after an RCU grace period)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        fd = open_by_id("prog", prog_id)
        if fd is None:
            return True
        fd.close()
        time.sleep(0.05)
    return False


def links_of(prog_id: int) -> list[int]:
    return [lk.id for lk in all_links() if lk.prog_id == prog_id]


class Poke:
    """Call getpgid() every few milliseconds in a thread until stopped."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.tid = 0

    def _run(self) -> None:
        self.tid = threading.get_native_id()
        while not self._stop.is_set():
            os.getpgid(0)
            time.sleep(0.01)

    def __enter__(self) -> "Poke":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def parse(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def ours(records: list[dict[str, Any]], map_name: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("map") == map_name and "event" in r and r["event"]["tgid"] == PID]


def test_json_duration_events_trace_and_cleanup() -> None:
    with Poke() as poke:
        res = subprocess.run(corebpf("--json", "--duration", "3"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    records = parse(res.stdout)
    attached = [r for r in records if "attached" in r]
    assert [r["attached"] for r in attached] == ["on_getpgid"]
    assert attached[0]["target"] == "tracepoint syscalls/sys_enter_getpgid" and attached[0]["method"]
    ring, perf = ours(records, "events"), ours(records, "perf_events")
    assert ring and perf, res.stdout[-2000:]
    for r in ring:
        assert r["type"] == "struct event" and "cpu" not in r
        assert r["event"]["comm"] == COMM[:15] and r["event"]["source"] == "SOURCE_RING"
        assert r["event"]["pid"] == poke.tid
    for r in perf:
        assert isinstance(r["cpu"], int) and r["event"]["source"] == "SOURCE_PERF"
    # the program numbers its events: the ring got every one of them, in order
    seqs = [r["event"]["seq"] for r in ring]
    assert seqs == list(range(len(seqs)))
    traces = [r for r in records if "trace" in r and r["trace"].startswith(f"corebpf-run getpgid tgid={PID} ")]
    assert traces and {t["pid"] for t in traces} == {poke.tid} and traces[0]["comm"] in (COMM, "<...>")
    stopped = records[-1]
    assert stopped["stopped"] == "duration" and stopped["events"] >= len(ring) + len(perf)
    prog_id = attached[0]["program_id"]
    assert gone(prog_id), f"program {prog_id} is still loaded after corebpf run exited"
    assert links_of(prog_id) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_detaches(sig: signal.Signals) -> None:
    proc = subprocess.Popen(corebpf("--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first.get("attached") == "on_getpgid", first
        prog_id = first["program_id"]
        assert open_by_id("prog", prog_id) is not None
        assert links_of(prog_id), "the program is not linked while corebpf run runs"
        seen: list[dict[str, Any]] = []
        with Poke():
            while not ours(seen, "events"):
                seen.append(json.loads(proc.stdout.readline()))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert parse(out)[-1]["stopped"] == sig.name
    assert gone(prog_id) and links_of(prog_id) == []


def test_count_stops_after_n_events_human_output() -> None:
    with Poke():
        res = subprocess.run(corebpf("--count", "4", "--no-trace"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4, lines
    for line in lines:
        assert "events:" in line or "perf_events[cpu " in line
        assert f"tgid={PID}" in line and f"comm={COMM[:15]}" in line.replace("'", "")
    assert "attached on_getpgid" in res.stderr and "stopped (count): 4 events" in res.stderr


def test_explicit_record_types() -> None:
    with Poke():
        res = subprocess.run(corebpf("--json", "--count", "6", "--no-trace", "--type", "events=event",
                                     "--type", "perf_events=struct event"),
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    records = parse(res.stdout)
    events = [r for r in records if "event" in r]
    assert len(events) == 6 and {r["type"] for r in events} == {"struct event"}
    assert records[-1] == {"stopped": "count", "events": 6, "trace_lines": 0, "lost": records[-1]["lost"]}


def _fails(args: list[str], *needles: str) -> str:
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corebpf: error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_bad_input_exits_1_with_one_line(tmp_path: Path) -> None:
    _fails([*CLI, "run", str(tmp_path / "missing.bpf.o")], "missing.bpf.o", "No such file")
    corrupt = tmp_path / "corrupt.bpf.o"
    corrupt.write_bytes(b"\x7fELF" + os.urandom(200))
    _fails([*CLI, "run", str(corrupt)], "corrupt.bpf.o")
    truncated = tmp_path / "truncated.bpf.o"
    truncated.write_bytes(OBJ.read_bytes()[:600])
    _fails([*CLI, "run", str(truncated)], "truncated.bpf.o")
    _fails([*CLI, "run", str(OBJ), "--type", "events=nope"], "'nope'", "struct event")
    _fails([*CLI, "run", str(OBJ), "--type", "counters=event"], "counters", "events, perf_events")
    _fails([*CLI, "run", str(OBJ), "--set", "no_such_var=1"], "no_such_var", "target_tgid")
    _fails([*CLI, "run", str(OBJ), "--set", "target_tgid=abc"], "target_tgid")
    _fails([*CLI, "run", str(OBJ), "--btf", str(tmp_path / "nope.btf")], "nope.btf", "No such file")
    _fails([*CLI, "run", str(OBJ), "--btf", str(corrupt)], "corrupt.bpf.o")


def test_busy_trace_pipe_warns_or_fails_when_required() -> None:
    """trace_pipe takes one reader: while this test holds it, the default run goes on without
    bpf_printk lines (and says why), --trace fails with one line."""
    from corebpf.runner import TracePipe

    try:
        holder = TracePipe()
    except Exception as exc:  # someone else reads it already, or no tracefs
        pytest.skip(f"cannot hold trace_pipe for this test: {exc}")
    with holder:
        res = subprocess.run(corebpf("--json", "--duration", "0.2"), capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        notes = [r for r in parse(res.stdout) if "trace_error" in r]
        assert notes and "one reader at a time" in notes[0]["trace_error"]
        _fails(corebpf("--trace", "--duration", "0.2"), "trace_pipe", "one reader at a time")


def test_program_the_kernel_refuses_exits_1(tmp_path: Path) -> None:
    """fentry needs BPF trampolines, which this kernel refuses (lockdown): one clear line, nothing left."""
    from corebpf import load
    from corebpf.errors import CoreBPFError

    obj = CORPUS / "obj_fentry.bpf.o"
    try:
        load(obj).close()
    except CoreBPFError:
        pass
    else:
        pytest.skip("this kernel loads fentry programs: nothing to refuse")
    line = _fails([*CLI, "run", str(obj)], "obj_fentry.bpf.o", "unlink_enter")
    assert "EPERM" in line or "refuse" in line or "not permitted" in line.lower()


def test_target_option_attaches_sections_without_attach_point() -> None:
    """cgroup_skb/egress names no cgroup: --target gives it; without one the program is skipped."""
    from corebpf.node import ensure_mounted

    obj = CORPUS / "cgroup_skb.bpf.o"
    cgroup = ensure_mounted("cgroup2")
    res = subprocess.run([*CLI, "run", str(obj), "--json", "--duration", "0.3", "--target",
                          f"egress_count.cgroup={cgroup}"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    records = parse(res.stdout)
    attached = [r for r in records if "attached" in r]
    assert len(attached) == 1 and attached[0]["target"].startswith(f"cgroup {cgroup}")
    assert gone(attached[0]["program_id"])
    res = subprocess.run([*CLI, "run", str(obj), "--json", "--duration", "0.1"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    records = parse(res.stdout)
    assert [r["skipped"] for r in records if "skipped" in r] == ["egress_count"]
    assert any(r.get("warning") == "no program attached" for r in records)
    _fails([*CLI, "run", str(obj), "--target", "nope.cgroup=/"], "no program 'nope'", "egress_count")
