"""tracefs: tracepoint ids, the event list, and legacy kprobe/uprobe events we create and remove."""

from __future__ import annotations

import errno
import itertools
import os
import threading
import time
from typing import Optional

from ..errors import CoreBPFError
from ._matches import close_matches
from .planb import TargetNotFoundError

_counter = itertools.count()
_lock = threading.Lock()
GROUP = "corebpf"
"""The tracefs group of probe events corebpf creates (``events/corebpf/...``)."""


def tracefs() -> str:
    """Where tracefs is, mounting it when missing (raises :class:`corebpf.errors.NodeError`)."""
    from ..node.mounts import ensure_mounted

    return ensure_mounted("tracefs")


def list_events(base: Optional[str] = None) -> list[str]:
    """Every tracepoint as ``category/name`` (empty when tracefs has no events directory)."""
    root = os.path.join(base or tracefs(), "events")
    out = []
    try:
        for cat in os.listdir(root):
            d = os.path.join(root, cat)
            if os.path.isdir(d):
                out.extend(f"{cat}/{ev}" for ev in os.listdir(d) if os.path.isdir(os.path.join(d, ev)))
    except OSError:
        return []
    return sorted(out)


def event_id(category: str, name: str) -> int:
    """The perf ``config`` of tracepoint ``category/name``; :class:`TargetNotFoundError` with close matches."""
    base = tracefs()
    path = os.path.join(base, "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise CoreBPFError(f"cannot read tracepoint id {path}: {exc}") from None
    events = list_events(base)
    want = f"{category}/{name}"
    matches = close_matches(want, events) or close_matches(name, [e.split("/", 1)[1] for e in events])
    raise TargetNotFoundError("tracepoint", want, matches, f"{base}/events")


def unique_event_name(kind: str, what: str) -> str:
    """A tracefs event name no other corebpf process uses: ``<kind>_<what>_<pid>_<n>`` sanitised."""
    clean = "".join(c if c.isalnum() else "_" for c in what)[:32]  # the kernel caps event names at 64
    with _lock:
        n = next(_counter)
    return f"{kind}_{clean}_{os.getpid()}_{n}"


def add_probe_event(file: str, definition: str) -> None:
    """Append one probe definition to ``kprobe_events``/``uprobe_events`` (raises with the reason)."""
    path = os.path.join(tracefs(), file)
    if not os.path.exists(path):
        raise CoreBPFError(f"{path} does not exist: kernel built without CONFIG_{file.split('_')[0].upper()}_EVENTS")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, definition.encode() + b"\n")
        finally:
            os.close(fd)
    except OSError as exc:
        why = {errno.ENOENT: "no such symbol or probe point", errno.EINVAL: "invalid probe definition or address",
               errno.EEXIST: "an event with this name exists", errno.EBUSY: "the event is in use"}.get(exc.errno or 0, "")
        raise CoreBPFError(f"writing {definition!r} to {path} failed: {exc.strerror}"
                           + (f" ({why})" if why else "")) from None


def remove_probe_event(file: str, event: str, timeout: float = 5.0) -> None:
    """Delete ``corebpf/<event>`` from ``kprobe_events``/``uprobe_events`` (ignores an absent one).

    The kernel releases a perf event held by a BPF link only after an RCU grace period, so the event
    can stay busy (EBUSY) for a moment after the link closed: retry until ``timeout``.
    """
    path = os.path.join(tracefs(), file)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, f"-:{GROUP}/{event}\n".encode())
            finally:
                os.close(fd)
            return
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):
                return
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CoreBPFError(f"cannot remove {GROUP}/{event} from {path}: {exc.strerror}"
                                   + (" (still in use: is the link pinned?)" if exc.errno == errno.EBUSY else "")) \
                    from None
            time.sleep(0.005)


def our_probe_events(file: str) -> list[str]:
    """The ``corebpf/...`` lines of ``kprobe_events``/``uprobe_events`` (for leak checks)."""
    try:
        with open(os.path.join(tracefs(), file)) as f:
            return [ln for ln in f.read().splitlines() if f":{GROUP}/" in ln]
    except OSError:
        return []


def _event_pid(line: str) -> Optional[int]:
    """The pid embedded in a corebpf event line (``p:corebpf/kprobe_fn_<pid>_<n> ...``)."""
    name = line.split()[0].split("/", 1)[-1]
    parts = name.rsplit("_", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def remove_probe_events(pid: Optional[int] = None) -> list[str]:
    """Remove corebpf probe events left behind: those of process ``pid``, or (default) of processes that
    no longer run (e.g. killed, or whose pinned links were since unpinned). Events still in use stay.
    Returns the removed event names."""
    removed = []
    for file in ("kprobe_events", "uprobe_events"):
        for line in our_probe_events(file):
            owner = _event_pid(line)
            if owner is None or (pid is not None and owner != pid):
                continue
            if pid is None and os.path.exists(f"/proc/{owner}"):
                continue
            event = line.split()[0].split("/", 1)[1]
            try:
                remove_probe_event(file, event, timeout=0)
                removed.append(event)
            except CoreBPFError:
                pass  # busy: a pinned link still uses it
    return removed


__all__ = ["remove_probe_events", "GROUP", "tracefs", "list_events", "event_id", "unique_event_name", "add_probe_event",
           "remove_probe_event", "our_probe_events"]
