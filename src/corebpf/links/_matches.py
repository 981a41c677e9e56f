"""Close matches for names the user got wrong (difflib, plus names that contain the query)."""

from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` candidates most like ``name``: difflib's best, then ones containing it."""
    pool = list(dict.fromkeys(candidates))
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    if len(found) < n and len(name) >= 3:
        low = name.lower()
        for c in pool:
            if low in c.lower() and c not in found:
                found.append(c)
                if len(found) >= n:
                    break
    return found[:n]


__all__ = ["close_matches"]
