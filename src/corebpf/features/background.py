"""``probe_all()`` in forked child processes, so a short-lived command overlaps it with its own work.

The probes are mostly kernel time (verifier runs, RCU grace periods) but each of the ~6,000 helper
probes also needs a little Python between two system calls. Run on threads next to a main thread
that is busy in Python (imports, host facts, the inventory), or next to each other, they would wait
for the GIL after every system call; child processes have their own interpreters, so all CPUs work.
``corebpf doctor`` forks the prober first thing (:func:`start_split`, which can also split the probes
over several processes: each probes a share of the program types, the first also the attach, map and
instruction-set probes), does what must precede any probe (mounts, the bpf() check, the inventory's
id list), says go, and collects the report at the end (:func:`collect`).

    >>> probers = start_split(2)         # fork; the children prepare (BTF scan) and wait
    >>> ...                              # work that must happen before any probe object exists
    >>> for p in probers: p.go()         # the children probe now
    >>> report = collect(probers)        # the FeatureReport, as probe_all() returns it

Reports cross the pipes as :mod:`marshal` data of plain tuples (no pickle import, nothing lost).
"""

from __future__ import annotations

import marshal
import os
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # the parent needs the record classes only when it rebuilds the report
    from . import FeatureReport

_GO, _STOP = b"g", b"s"


class ProbeFailed(Exception):
    """The child's probes raised: ``str()`` is the child's ``"ExceptionType: message"``."""


class ProbeProcess:
    """A forked child that runs :func:`corebpf.features.probe_all` once told to (see the module doc)."""

    def __init__(self, pid: int, control: int, results: int) -> None:
        self.pid = pid
        self._control = control  # write end: go/stop
        self._results = results  # read end: the marshalled report
        self._report: Optional["FeatureReport"] = None

    @classmethod
    def start(cls, names: Optional[list[str]] = None, rest: bool = True) -> Optional["ProbeProcess"]:
        """Fork the prober: all of :func:`~corebpf.features.probe_all`, or with ``names`` one share of it
        (:func:`~corebpf.features.probe_part`). None where forking is unsafe or impossible (threads
        already running: a fork copies only the calling thread and any lock another one holds)."""
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return None
        control_r, control_w = os.pipe()
        results_r, results_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for fd in (control_r, control_w, results_r, results_w):
                os.close(fd)
            return None
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            os.close(control_w)
            os.close(results_r)
            _child(control_r, results_w, names, rest)
        os.close(control_r)
        os.close(results_w)
        return cls(pid, control_w, results_r)

    def go(self) -> None:
        """Let the child create probe objects now (everything that had to come first is done)."""
        self._send(_GO)

    def cancel(self) -> None:
        """Tell the child to exit without probing, and reap it."""
        self._send(_STOP)
        self._finish()

    def _send(self, what: bytes) -> None:
        if self._control >= 0:
            try:
                os.write(self._control, what)
            except OSError:  # the child is gone: result() reports it
                pass
            os.close(self._control)
            self._control = -1

    def _finish(self) -> bytes:
        chunks = []
        if self._results >= 0:
            try:
                while True:
                    chunk = os.read(self._results, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(self._results)
                self._results = -1
        if self.pid:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0
        return b"".join(chunks)

    def result(self) -> "FeatureReport":
        """The child's report (waits for it); raises :class:`ProbeFailed` when the probes failed."""
        if self._report is None:
            self._send(_GO)
            data = self._finish()
            try:
                status, payload = marshal.loads(data)
            except (EOFError, ValueError, TypeError):
                raise ProbeFailed("the probe process ended without a report") from None
            if status != "ok":
                raise ProbeFailed(payload)
            from . import FeatureReport

            self._report = FeatureReport.from_wire(payload)
        return self._report

    def __del__(self) -> None:
        if getattr(self, "_control", -1) >= 0 or getattr(self, "_results", -1) >= 0:
            try:
                self.cancel()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


# How many probe processes doctor forks. One, whose helper probes run on CPUs + 1 threads: on this
# project's 2-CPU test host, busy with other work, two processes each probing half the helpers in one
# thread measured no faster (median 569 vs 533 ms, same CPU time, 15 interleaved runs at load ~10);
# start_split(n) keeps the split for hosts where it pays.
DEFAULT_PROCESSES = 1


def start_split(parts: int = DEFAULT_PROCESSES) -> list[ProbeProcess]:
    """Fork ``parts`` probers sharing the probes (:func:`~corebpf.features.split_prog_types`), each
    probing its helpers in one thread: processes run Python in parallel without GIL hand-offs. Empty
    when forking is not possible (nothing is left running then)."""
    from . import split_prog_types

    probers: list[ProbeProcess] = []
    for i, names in enumerate(split_prog_types(parts) if parts > 1 else [None]):
        prober = ProbeProcess.start(names, rest=i == 0)
        if prober is None:
            for started in probers:
                started.cancel()
            return []
        probers.append(prober)
    return probers


def collect(probers: list[ProbeProcess]) -> "FeatureReport":
    """The whole report from the probers of :func:`start_split` (waits for all of them; the first
    failure is raised once every child is reaped)."""
    from . import merge_parts

    reports, failure = [], None
    for prober in probers:
        try:
            reports.append(prober.result())
        except ProbeFailed as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return reports[0] if len(reports) == 1 else merge_parts(reports)


def _child(control: int, results: int, names: Optional[list[str]], rest: bool) -> None:  # pragma: no cover
    """Prepare (imports, the BTF scan: no kernel objects yet), wait for go, probe, send, exit."""
    import gc

    gc.disable()  # short-lived, allocates much and frees little: the cyclic GC would only cost time
    status: str
    payload: Any
    try:
        from . import _all_btf_targets, probe_all, probe_part, vmlinux_types

        vmlinux_types(_all_btf_targets())
        if os.read(control, 1) != _GO:
            os._exit(0)
        report = probe_all() if names is None else probe_part(names, rest=rest)
        status, payload = "ok", report.to_wire()
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        status, payload = "error", f"{type(exc).__name__}: {exc}"
    try:
        data = marshal.dumps((status, payload))
        view = memoryview(data)
        while view:
            view = view[os.write(results, view):]
    except BaseException:  # noqa: BLE001 - the parent is gone: nothing to tell
        pass
    os._exit(0)
