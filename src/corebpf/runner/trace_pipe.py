"""``TracePipe``: non-blocking reader of tracefs ``trace_pipe``, where ``bpf_printk`` output lands.

``trace_pipe`` is a consuming read of the global trace buffer: what one reader takes, no other
reader sees (``bpftool prog tracelog`` and ``cat trace_pipe`` compete the same way). The file
supports poll, so its fd can sit in an epoll set next to ring and perf buffers.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Optional

from ..errors import NodeError
from .records import TraceLine
from .._sys.closing import Closing

__all__ = ["TracePipe", "parse_trace_line", "trace_pipe_path"]

# "  python3-1234    [002] d..31  1234.567890: bpf_trace_printk: message"; the tgid column
# ("(  1234)", option record-tgid) and the flags column (option irq-info) are optional
_LINE = re.compile(r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
                   r"(?:(?P<flags>\S{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w.]+):\s?(?P<msg>.*)$")
_READ_SIZE = 64 * 1024


def parse_trace_line(line: str) -> TraceLine:
    """The fields of one ``trace_pipe`` line (unparsed lines keep only ``line`` and ``message``)."""
    m = _LINE.match(line)
    if m is None:
        return TraceLine(line=line, message=line.strip())
    return TraceLine(line=line, message=m["msg"], comm=m["comm"], pid=int(m["pid"]), cpu=int(m["cpu"]),
                     timestamp=float(m["ts"]), event=m["event"])


def trace_pipe_path() -> str:
    """Path of ``trace_pipe``, mounting tracefs first when it is not mounted (NodeError if impossible)."""
    from ..node import ensure_mounted

    path = os.path.join(ensure_mounted("tracefs"), "trace_pipe")
    if not os.path.exists(path):
        raise NodeError(f"{path} does not exist: this kernel has no ftrace ring buffer (CONFIG_TRACING is off)")
    return path


def _why(errno_: Optional[int]) -> str:
    if errno_ == errno.EBUSY:
        return "another process is reading it (trace_pipe takes one reader at a time): stop that reader"
    if errno_ in (errno.EACCES, errno.EPERM):
        return "reading bpf_printk output needs root (or read access to tracefs)"
    return "bpf_printk output cannot be read"


class TracePipe(Closing):
    """Lines of ``trace_pipe`` as they come, read without blocking.

    ``fileno()`` is readable (epoll) when lines are waiting; :meth:`read_lines` returns the complete
    lines read so far (a partial last line waits for the rest). A context manager.
    """

    def __init__(self, path: Optional[str] = None) -> None:
        """Open ``path`` (default: ``trace_pipe`` of the mounted, or newly mounted, tracefs)."""
        self.path = path or trace_pipe_path()
        try:
            self._fd: Optional[int] = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise NodeError(f"cannot open {self.path}: {exc.strerror}; {_why(exc.errno)}") from None
        self._partial = b""

    def fileno(self) -> int:
        """The open fd (for epoll)."""
        if self._fd is None:
            raise ValueError("the trace pipe is closed")
        return self._fd

    def read_lines(self) -> list[TraceLine]:
        """Every complete line waiting now (empty when there is none)."""
        fd = self.fileno()
        chunks = [self._partial]
        while True:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            if not data:
                break
            chunks.append(data)
        text = b"".join(chunks)
        *lines, self._partial = text.split(b"\n")
        return [parse_trace_line(raw.decode("utf-8", "replace")) for raw in lines if raw.strip()]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._fd is None

    def close(self) -> None:
        """Close the fd (idempotent); unread lines stay in the kernel's buffer."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"<TracePipe {self.path}{' closed' if self._fd is None else ''}>"
