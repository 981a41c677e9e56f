"""Kernel symbol lookup the way bpftool does it, to name rewritten calls in translated code.

In translated (xlated) code the verifier has replaced a helper's id with the helper's address
relative to ``__bpf_call_base``, and a bpf-to-bpf call's target with the subprogram's index in
``jited_ksyms``. bpftool turns both back into names through ``/proc/kallsyms``: it keeps every
symbol with a non-zero address, sorts them by address (glibc's stable merge sort) and finds an
exact address with glibc's ``bsearch``. When several symbols share an address, which one
``bsearch`` lands on depends on its probing order, so :meth:`KernelSymbols.lookup` repeats that
order exactly instead of picking "the first".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from ..errors import NodeError

KALLSYMS = "/proc/kallsyms"


@dataclass
class KernelSymbols:
    """Addresses and names from ``/proc/kallsyms`` (or any lines in its format)."""

    call_base: int = 0
    """Address of ``__bpf_call_base`` (0 when unknown or hidden by ``kptr_restrict``)."""
    addresses: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> "KernelSymbols":
        """Parse kallsyms lines (``address type name [module]``)."""
        entries: list[tuple[int, str]] = []
        call_base = 0
        for line in lines:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                address = int(parts[0], 16)
            except ValueError:
                continue
            name = parts[2]
            if name == "__bpf_call_base":
                call_base = address
                if not address:  # kptr_restrict: bpftool then drops every symbol
                    return cls(0, [], [])
            if address:
                entries.append((address, name))
        entries.sort(key=lambda e: e[0])  # stable, like glibc's merge sort
        return cls(call_base, [a for a, _ in entries], [n for _, n in entries])

    @classmethod
    def load(cls, path: str = KALLSYMS) -> "KernelSymbols":
        """Read the running kernel's symbols (needs root for real addresses)."""
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return cls.from_lines(f)
        except OSError as exc:
            raise NodeError(f"cannot read {path}: {exc.strerror}; calls will print as raw addresses") from exc

    def lookup(self, address: int) -> Optional[str]:
        """The symbol at exactly ``address``, chosen as glibc's bsearch would; None if none."""
        address &= (1 << 64) - 1
        lo, hi = 0, len(self.addresses)
        while lo < hi:
            mid = (lo + hi) // 2
            here = self.addresses[mid]
            if address < here:
                hi = mid
            elif address > here:
                lo = mid + 1
            else:
                return self.names[mid]
        return None


__all__ = ["KALLSYMS", "KernelSymbols"]
