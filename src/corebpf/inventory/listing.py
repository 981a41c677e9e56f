"""Listing the ids of loaded BPF objects and opening them by id: the part of the walk that needs no
record classes (``corebpf doctor`` counts objects with it while its probes run)."""

from __future__ import annotations

import errno
from typing import Optional

from .._sys import ops
from .._sys.fd import FD
from ..errors import BPFError, BPFInvalidArgumentError, BPFNotFoundError, BPFPermissionError

_KIND_WORDS = {"prog": "programs", "map": "maps", "link": "links", "btf": "BTF objects"}


def open_by_id(kind: str, obj_id: int) -> Optional[FD]:
    """An fd to object ``obj_id`` of ``kind``, or None when no such object exists (any more)."""
    for _ in range(3):
        try:
            return ops.get_fd_by_id(kind, obj_id)
        except BPFNotFoundError:
            return None
        except BPFPermissionError as exc:
            raise _permission_error(kind, exc) from None
        except BPFError as exc:
            # EAGAIN: a link whose id is allocated but not settled yet, or that is being freed
            if exc.errno != errno.EAGAIN:
                raise
    return None


_LIST_HINT = ("walking the ids of loaded BPF objects (BPF_*_GET_NEXT_ID / GET_FD_BY_ID) needs CAP_SYS_ADMIN; "
              "CAP_BPF alone is not enough: run as root or with CAP_SYS_ADMIN")


def _permission_error(kind: str, exc: BPFError) -> BPFError:
    # The generic EPERM hint suggests CAP_BPF, but the kernel checks capable(CAP_SYS_ADMIN) for id walks.
    return type(exc)(exc.errno or errno.EPERM, exc.command, _LIST_HINT,
                     detail=f"listing loaded {_KIND_WORDS.get(kind, kind)}")


def ids(kind: str) -> list[int]:
    """Every id of ``kind`` (``prog``/``map``/``link``/``btf``) loaded right now, ascending."""
    try:
        return ops.iter_ids(kind)
    except BPFPermissionError as exc:
        raise _permission_error(kind, exc) from None
    except BPFInvalidArgumentError:
        if kind in ("link", "btf"):
            return []  # kernels before 5.8 (links) / 5.4 (BTF ids) have no such id space: nothing to list
        raise


__all__ = ["ids", "open_by_id"]
