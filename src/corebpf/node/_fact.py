"""The record every host fact is wrapped in: the value, where it came from, and why it is missing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generic, Optional, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """One fact about the host.

    ``value`` is None when the fact could not be read; ``error`` then says why (e.g.
    ``"/sys/kernel/security/lockdown: No such file or directory"``). ``source`` always names where
    the value came from (a path, a syscall, an environment variable).
    """

    value: Optional[T]
    source: str
    error: Optional[str] = None

    @property
    def known(self) -> bool:
        """True when the value was read."""
        return self.error is None and self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view: ``{"value", "source", "error"}``."""
        return {"value": self.value, "source": self.source, "error": self.error}


def os_error_text(path: str, exc: OSError) -> str:
    """``"path: strerror"`` for an OSError raised while reading ``path``."""
    return f"{path}: {exc.strerror or exc}"


def read_text(path: str, limit: int = 1 << 20) -> Fact[str]:
    """Read a (small) text file; never raises."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError as exc:
        return Fact(None, path, os_error_text(path, exc))
    return Fact(data.decode("utf-8", errors="replace"), path)


def read_int(path: str) -> Fact[int]:
    """Read a file holding one integer (a sysctl, a PMU type); never raises."""
    text = read_text(path, 4096)
    if text.value is None:
        return Fact(None, path, text.error)
    try:
        return Fact(int(text.value.split()[0]), path)
    except (ValueError, IndexError):
        return Fact(None, path, f"{path}: not an integer: {text.value.strip()[:40]!r}")


def exists(path: str) -> bool:
    """``os.path.exists`` that treats permission problems as absence."""
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False
