"""``probe_all()`` in a forked child process, so a short-lived command overlaps it with its own work.

The probes are mostly kernel time (verifier runs, RCU grace periods) but each of the ~6,000 helper
probes also needs a little Python between two system calls. Run on threads next to a main thread
that is busy in Python (imports, host facts, the inventory), they would wait for the GIL after every
system call; a child process has its own interpreter, so both CPUs work. ``corebpf doctor`` forks
the child first thing (``corebpf.node.readiness.start``), does what must precede any probe (mounts,
the bpf() check, the inventory's id list), then says go, and collects the report at the end.

    >>> bg = ProbeProcess.start()        # forks; the child imports the probes and waits
    >>> ...                              # work that must happen before any probe object exists
    >>> bg.go()                          # the child probes now
    >>> report = bg.result()             # the FeatureReport (an exception if the child failed)

The report crosses the pipe as :mod:`marshal` data of plain tuples (no pickle import, nothing lost).
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
    def start(cls) -> Optional["ProbeProcess"]:
        """Fork the prober; None where forking is unsafe or impossible (threads already running: a fork
        copies only the calling thread and any lock another one holds) — then probe in-process."""
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
            _child(control_r, results_w)
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


def _child(control: int, results: int) -> None:  # pragma: no cover - runs in the forked child
    """Prepare (imports, the BTF scan: no kernel objects yet), wait for go, probe, send, exit."""
    import gc

    gc.disable()  # short-lived, allocates much and frees little: the cyclic GC would only cost time
    status: str
    payload: Any
    try:
        from . import _all_btf_targets, probe_all, vmlinux_types

        vmlinux_types(_all_btf_targets())
        if os.read(control, 1) != _GO:
            os._exit(0)
        status, payload = "ok", probe_all().to_wire()
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
