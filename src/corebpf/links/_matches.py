"""Close matches for names the user got wrong (difflib, plus names that contain the query).

Kernel name pools are large (~100k functions), so big pools are first cut down to names of similar
length sharing several 3-letter pieces with the query, which keeps an error message under a second.
"""

from __future__ import annotations

import difflib
from typing import Iterable

_BIG = 5000


def _trigrams(s: str) -> set[str]:
    return {s[i:i + 3] for i in range(len(s) - 2)}


def _prefilter(name: str, pool: list[str]) -> list[str]:
    grams = _trigrams(name)
    need = max(1, len(grams) // 3)
    slack = max(3, len(name) // 2)
    return [c for c in pool if abs(len(c) - len(name)) <= slack and len(grams & _trigrams(c)) >= need]


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` candidates most like ``name``: difflib's best, then ones containing it."""
    pool = list(dict.fromkeys(candidates))
    narrowed = _prefilter(name, pool) if len(pool) > _BIG and len(name) >= 3 else pool
    found = difflib.get_close_matches(name, narrowed, n=n, cutoff=0.6)
    if len(found) < n and len(name) >= 3:
        low = name.lower()
        for c in pool:
            if low in c.lower() and c not in found:
                found.append(c)
                if len(found) >= n:
                    break
    return found[:n]


__all__ = ["close_matches"]
