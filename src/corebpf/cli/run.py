"""``corebpf run OBJ``: load an object, attach all its programs, print what they send until stopped.

    corebpf run prog.bpf.o                          # events and bpf_printk lines, readable
    corebpf run prog.bpf.o --json --duration 10     # one JSON object per line, stop after 10 s
    corebpf run prog.bpf.o --type events=event --set target_pid=1234 --count 100
    corebpf run xdp.bpf.o --target interface=eth0   # sections that name no attach point

Ring buffer and perf buffer records are decoded through BTF (see :mod:`corebpf.runner.record_types`
for how the record type is found); ``trace_pipe`` is read when a program calls ``bpf_printk``.
Ctrl-C (SIGINT), SIGTERM, ``--duration`` or ``--count`` stop the run: programs are detached, what
they sent before is printed, and the exit code is 0. Bad input, a program the kernel refuses, or a
failed attach exit 1 with one line on stderr.
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import Any, Optional

import click

from ..errors import CoreBPFError
from ._output import fail

__all__ = ["run", "parse_assignment", "parse_targets"]


class _Stopper:
    """Turns SIGINT/SIGTERM into a request to stop the session (or, before it exists, a flag)."""

    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self.session: Any = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if sig == signal.SIGINT and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # started with SIGINT ignored (nohup, a background job): keep it so
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        self.reason = signal.Signals(signum).name
        if self.session is not None:
            self.session.stop()


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"NAME=VALUE"`` -> (name, value): integers in any base Python reads (``0x10``), ``true``/``false``,
    otherwise the string."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise CoreBPFError(f"invalid --set {text!r}: expected NAME=VALUE (e.g. target_pid=1234)")
    raw = raw.strip()
    value: Any = raw
    try:
        value = int(raw, 0)
    except ValueError:
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
    return name.strip(), value


def parse_targets(options: "tuple[str, ...] | list[str]", programs: "list[str]") -> dict[str, dict[str, Any]]:
    """``["xdp_prog.interface=eth0", "cgroup=/sys/fs/cgroup"]`` -> attach targets per program name.

    ``PROG.KEY=VALUE`` is for one program, ``KEY=VALUE`` for every program (each attach function
    uses only the keys it knows: ``interface``, ``cgroup``, ``direction``, ``mode``, ``pid``...)."""
    out: dict[str, dict[str, Any]] = {}
    for text in options:
        key, value = parse_assignment(text)
        prog, dot, bare = key.rpartition(".")
        if dot and prog not in programs:
            raise CoreBPFError(f"--target {text!r}: no program {prog!r} (programs: {', '.join(programs) or 'none'})")
        for name in ([prog] if dot else programs):
            out.setdefault(name, {})[bare if dot else key] = value
    return out


def _open_spec(path: str, assignments: tuple[str, ...]) -> Any:
    from ..elf.objectspec import ObjectSpec

    spec = ObjectSpec.from_file(path)
    for text in assignments:
        name, value = parse_assignment(text)
        if name not in spec.variables:
            have = ", ".join(n for n in spec.variables if "." not in n) or "none"
            raise CoreBPFError(f"--set {name}: no global variable {name!r} in {path} (it has: {have})")
        try:
            spec.variables[name] = value
        except (CoreBPFError, ValueError, TypeError, OverflowError) as exc:
            raise CoreBPFError(f"--set {name}={value!r}: {exc}") from None
    return spec


def _target_btf(path: Optional[str]) -> Any:
    """The CO-RE target for ``--btf`` (parsed now, so a bad file fails even when nothing needs CO-RE)."""
    if path is None:
        return None
    from ..loader.core import target_set

    return target_set(path)


def _say(as_json: bool, record: dict[str, Any], text: str) -> None:
    """Session notices: a JSON line on stdout with ``--json``, else a line on stderr."""
    if as_json:
        click.echo(json.dumps(record))
    else:
        click.echo(text, err=True)


def _announce(session: Any, as_json: bool) -> None:
    for name, link in session.links.links.items():
        prog = session.obj.programs[name]
        _say(as_json, {"attached": name, "program_id": prog.id, "target": link.target, "method": link.method},
             f"attached {name} (program id {prog.id}) to {link.target} via {link.method}")
    for name, why in session.links.skipped.items():
        _say(as_json, {"skipped": name, "reason": why}, f"skipped {name}: {why}")
    for name, rt in session.record_types.items():
        if rt is None:
            _say(as_json, {"map": name, "record_type": None},
                 f"{name}: no record type found, printing raw bytes (name one with --type {name}=TYPE)")
    if session.trace_error:
        _say(as_json, {"trace_error": session.trace_error}, f"not reading bpf_printk output: {session.trace_error}")
    if not session.links.links:
        _say(as_json, {"warning": "no program attached"}, "warning: no program was attached")


@click.command("run")
@click.argument("obj", metavar="OBJ")
@click.option("--btf", "btf_path", metavar="FILE", help="CO-RE against this BTF instead of the running kernel's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--type", "types", multiple=True, metavar="MAP=TYPE",
              help="Record type of a ring/perf buffer map (a struct of the object's BTF); TYPE alone: all maps.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a global (e.g. const volatile) variable before load.")
@click.option("--duration", type=click.FloatRange(min=0), metavar="S", help="Stop after S seconds.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="Stop after N events (and trace lines).")
@click.option("--target", "targets", multiple=True, metavar="[PROG.]KEY=VALUE",
              help="Attach target for sections that name none (interface=eth0, cgroup=/sys/fs/cgroup, ...).")
@click.option("--trace/--no-trace", default=None,
              help="Read bpf_printk output from trace_pipe (default: when a program calls bpf_printk; "
                   "trace_pipe takes one reader at a time).")
def run(obj: str, btf_path: Optional[str], as_json: bool, types: tuple[str, ...], assignments: tuple[str, ...],
        duration: Optional[float], count: Optional[int], targets: tuple[str, ...], trace: Optional[bool]) -> None:
    """Load OBJ, attach all its programs, print ring/perf buffer events and bpf_printk lines until stopped."""
    from ..runner import Event, Lost, Session, parse_type_options
    from ..runner.format import item_to_json, item_to_text

    stopper = _Stopper()
    stopper.install()
    try:
        try:
            explicit = parse_type_options(list(types))
            spec = _open_spec(obj, assignments)
            target = _target_btf(btf_path)
            attach_targets = parse_targets(targets, [n for n, p in spec.programs.items() if not p.is_subprog])
            loaded = spec.load(btf=target)
        except CoreBPFError as exc:
            fail(f"cannot load {obj}: {exc}")
        with loaded:
            try:
                session = Session(loaded, types=explicit, trace=trace, targets=attach_targets)
            except CoreBPFError as exc:
                fail(f"{obj}: {exc}")
            with session:
                stopper.session = session
                if stopper.reason is not None:
                    session.stop()
                _announce(session, as_json)
                counts = {"events": 0, "trace_lines": 0, "lost": 0}  # what was printed
                why = "duration" if duration is not None else "end"
                for item in session.items(duration=duration):
                    click.echo(json.dumps(item_to_json(item)) if as_json else item_to_text(item))
                    if isinstance(item, Lost):
                        counts["lost"] += item.count
                        continue
                    counts["events" if isinstance(item, Event) else "trace_lines"] += 1
                    if count is not None and counts["events"] + counts["trace_lines"] >= count:
                        why = "count"
                        break
                if stopper.reason is not None:
                    why = stopper.reason
        _say(as_json, {"stopped": why, **counts},
             f"stopped ({why}): {counts['events']} events, {counts['trace_lines']} trace lines, {counts['lost']} lost")
    finally:
        stopper.restore()
    sys.stdout.flush()
