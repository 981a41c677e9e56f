"""One definition of "a resource with close()": a context manager that garbage collection closes too."""

from __future__ import annotations

from typing import TypeVar

C = TypeVar("C", bound="Closing")


class Closing:
    """Mixin for objects owning kernel resources: ``with`` and garbage collection both call ``close()``.

    ``close()`` must be idempotent. Errors while closing at garbage collection are swallowed (there is
    nobody to report them to); ``with`` and explicit ``close()`` let them through.
    """

    __slots__ = ()

    def close(self) -> None:  # pragma: no cover - every user defines it
        raise NotImplementedError

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
