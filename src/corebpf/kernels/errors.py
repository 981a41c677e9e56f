"""The one error type of :mod:`corebpf.kernels`."""

from __future__ import annotations

from ..errors import CoreBPFError

__all__ = ["KernelError"]


class KernelError(CoreBPFError):
    """A kernel could not be fetched, unpacked, decompressed or booted; the message says what to do."""
