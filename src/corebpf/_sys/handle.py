"""The part every kernel-object wrapper shares: one owned fd, opened from an fd, id or bpffs pin."""

from __future__ import annotations

import os
from typing import ClassVar, TypeVar

from . import ops
from .fd import FD

H = TypeVar("H", bound="Handle")


def fd_kind(fd: int) -> str:
    """``"map"``, ``"prog"``, ``"link"``, ``"btf"``... for a BPF fd, ``""`` for anything else.

    The kernel's info command dispatches on the fd's kind, so this is checked before trusting it.
    """
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
    prefix = "anon_inode:bpf-"
    return target[len(prefix):] if target.startswith(prefix) else ""


class Handle:
    """Base of Map and Program: owns ``_fd`` and knows how to open its kind of object.

    Subclasses set ``_KIND`` (the bpf fd kind and id namespace: "map", "prog") and ``_NOUN``
    (for messages), and implement ``_from_owned_fd(fd)`` to read the object's info.
    """

    _KIND: ClassVar[str]
    _NOUN: ClassVar[str]
    _fd: FD

    @classmethod
    def _from_owned_fd(cls: type[H], fd: FD) -> H:
        raise NotImplementedError

    @classmethod
    def _adopt(cls: type[H], fd: FD, where: str) -> H:
        if fd_kind(fd.fileno()) != cls._KIND:
            fd.close()
            raise ValueError(f"{where} is not a BPF {cls._NOUN}")
        return cls._from_owned_fd(fd)

    @classmethod
    def from_fd(cls: type[H], fd: "int | FD") -> H:
        """Wrap an fd: an :class:`FD` is taken over, a plain int is duplicated (the caller keeps it)."""
        owned = fd if isinstance(fd, FD) else FD(os.dup(fd))
        return cls._adopt(owned, f"fd {owned.fileno()}")

    @classmethod
    def from_id(cls: type[H], obj_id: int) -> H:
        """Open the loaded object with this id (raises ``BPFNotFoundError`` if there is none)."""
        return cls._from_owned_fd(ops.get_fd_by_id(cls._KIND, obj_id))

    @classmethod
    def from_pin(cls: type[H], path: "str | os.PathLike[str]") -> H:
        """Open the object pinned at ``path`` in a bpffs."""
        return cls._adopt(ops.obj_get(os.fspath(path)), f"{os.fspath(path)} is pinned, but it")

    @property
    def fd(self) -> FD:
        """The owned file descriptor."""
        return self._fd

    def fileno(self) -> int:
        """The fd number, so the object goes wherever an fd is expected (prog arrays, map-in-map)."""
        return self._fd.fileno()

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        """Release the fd (idempotent); the kernel object lives on while pinned, attached or held."""
        self._fd.close()

    def pin(self, path: "str | os.PathLike[str]") -> None:
        """Pin the object at ``path`` (in a mounted bpffs) so it outlives this process."""
        ops.obj_pin(self.fileno(), os.fspath(path))

    def __enter__(self: H) -> H:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
