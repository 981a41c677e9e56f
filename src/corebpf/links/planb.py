"""Plan B: try attach methods in order, keep the first that works, and say why the others did not.

Methods a cached feature probe (:mod:`corebpf.features`) already knows to be missing are skipped
without a system call (their probe's reason is recorded); the rest are tried for real, because a
probe on a tiny program cannot see every reason a real attach may fail (a missing symbol, EBUSY).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..errors import CoreBPFError

if TYPE_CHECKING:  # pragma: no cover
    from .link import Link


@dataclass(frozen=True)
class Attempt:
    """One method tried (or skipped) while attaching: its name, whether it worked, and why not."""

    method: str
    ok: bool
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.method}: {'ok' if self.ok else self.reason}"


class AttachError(CoreBPFError):
    """No attach method worked. ``attempts`` says why for each one, in the order tried."""

    def __init__(self, target: str, attempts: Sequence[Attempt], hint: str = "") -> None:
        self.target = target
        self.attempts = list(attempts)
        self.hint = hint
        why = "; ".join(str(a) for a in self.attempts) or "no attach method applies"
        super().__init__(f"cannot attach {target}: {why}" + (f". {hint}" if hint else ""))


class TargetNotFoundError(CoreBPFError, LookupError):
    """The attach point does not exist (tracepoint, symbol, interface, cgroup...).

    ``matches`` holds the closest existing names (maybe empty).
    """

    def __init__(self, what: str, name: str, matches: Sequence[str], where: str = "") -> None:
        self.what = what
        self.name = name
        self.matches = list(matches)
        text = f"{what} {name!r} not found" + (f" in {where}" if where else "")
        text += f"; did you mean: {', '.join(self.matches)}?" if self.matches else "; no similar names exist"
        super().__init__(text)


@dataclass(frozen=True)
class Method:
    """A way to attach: ``name``, ``attach()`` doing it, and optionally ``feature``, the name of the
    :func:`corebpf.features.attach_method` probe that says whether it can work here at all."""

    name: str
    attach: Callable[[], "Link"]
    feature: Optional[str] = None


def _feature_says_no(feature: Optional[str]) -> Optional[str]:
    if feature is None:
        return None
    from .. import features

    r = features.attach_method(feature)
    return None if r.supported else f"unavailable here ({feature} probe: {r.reason})"


def first_working(target: str, methods: Sequence[Method], *, force: Optional[str] = None, hint: str = "") -> "Link":
    """Attach with the first of ``methods`` that works and record every attempt on the link.

    ``force`` names the one method to use (no fallback; its probe is not consulted). Errors that
    say the target itself is wrong (:class:`TargetNotFoundError`) stop the search at once: another
    method cannot find a tracepoint or symbol that does not exist.
    """
    if force is not None:
        chosen = [m for m in methods if m.name == force]
        if not chosen:
            raise ValueError(f"unknown attach method {force!r} for {target}; choose from "
                             f"{', '.join(m.name for m in methods)}")
        methods = chosen
    attempts: list[Attempt] = []
    for m in methods:
        if force is None:
            reason = _feature_says_no(m.feature)
            if reason is not None:
                attempts.append(Attempt(m.name, False, reason))
                continue
        try:
            link = m.attach()
        except TargetNotFoundError:
            raise
        except (CoreBPFError, OSError) as exc:
            attempts.append(Attempt(m.name, False, str(exc)))
            continue
        attempts.append(Attempt(m.name, True))
        link.attempts = attempts + link.attempts
        return link
    raise AttachError(target, attempts, hint)




def fallback(target: str, candidates: Sequence[tuple[str, Any, dict]]) -> "Link":
    """Attach the first of equivalent programs that loads and attaches: ``candidates`` are
    ``(kind, program, targets)`` in order of preference, e.g.::

        fallback("openat", [("fentry", lambda: load_fentry(), {}),
                            ("kprobe", kprobe_prog, {"function": "do_sys_openat2"}),
                            ("tracepoint", tp_prog, {"tracepoint": "syscalls/sys_enter_openat"})])

    ``kind`` is a section prefix understood by :func:`corebpf.links.attach_program` (``fentry``,
    ``kprobe``, ``tracepoint``, ``raw_tp``, ``tp_btf``, ``uprobe``...). ``program`` may be a callable that
    loads it: a load refused here (fentry under lockdown: EPERM) counts as that candidate failing.
    The returned link's ``method`` is prefixed with the kind used; ``attempts`` lists every candidate.
    """
    from .auto import attach_program

    attempts: list[Attempt] = []
    for kind, program, targets in candidates:
        try:
            prog = program() if callable(program) and not hasattr(program, "fileno") else program
            link = attach_program(prog, kind, **targets)
        except TargetNotFoundError as exc:
            attempts.append(Attempt(kind, False, str(exc)))
            continue
        except (CoreBPFError, OSError) as exc:
            attempts.append(Attempt(kind, False, str(exc)))
            continue
        attempts.append(Attempt(kind, True))
        link.method = f"{kind}:{link.method}"
        link.attempts = attempts + link.attempts
        link.program = prog  # type: ignore[attr-defined]  # keep a loaded-on-demand program alive
        return link
    raise AttachError(target, attempts)


__all__ = ["Attempt", "AttachError", "TargetNotFoundError", "Method", "first_working", "fallback"]
