"""``corebpf vmtest``: run a command on other kernels, each booted in QEMU.

    corebpf vmtest -k debian:5.10 -k debian:6.12 -- .venv/bin/python -m pytest -q tests/kernel

The command's output streams live (each kernel under a header line), then a summary table; the exit
code is 0 only when the command exited 0 on every kernel. ``--json`` prints the per-kernel results
(status, exit code, output, timings, console tail) on stdout and streams the output to stderr.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TextIO

import click

from ._output import echo_json, json_option, table

SUMMARY_COLUMNS = [
    ("KERNEL", "kernel"), ("RELEASE", "release"), ("STATUS", "status"), ("EXIT", "exit_code"),
    ("BOOT s", lambda r: f"{r.boot_seconds:.1f}" if r.boot_seconds is not None else ""),
    ("TOTAL s", lambda r: f"{r.duration:.1f}"), ("ACCEL", "accel"),
    ("NOTE", lambda r: r.reason + (f" ({len(r.warnings)} kernel warnings)" if r.warnings else "")),
]


def _parse_env(values: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--env")
        env[key] = value
    return env


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through run_in_vm's cleanup: QEMU killed, work dir removed


class _LinePrefixer:
    """With several VMs at once, each output line is printed whole, prefixed with its kernel."""

    def __init__(self, label: str, stream: TextIO, lock: threading.Lock) -> None:
        self._label, self._stream, self._lock, self._partial = label, stream, lock, ""

    def __call__(self, text: str) -> None:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            with self._lock:
                self._stream.write("".join(f"[{self._label}] {line}\n" for line in lines))
                self._stream.flush()

    def flush(self) -> None:
        if self._partial:
            self("\n")


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-k", "--kernel", "kernels", multiple=True, required=True, metavar="SPEC",
              help="vmlinuz path, .deb, debian:5.10|6.1|6.12 or a linux-image-* package (repeatable).")
@click.option("--timeout", type=click.FloatRange(min=1), default=900.0, show_default=True,
              help="Seconds per kernel for boot + command; QEMU is killed after that.")
@click.option("--boot-timeout", type=click.FloatRange(min=1), default=180.0, show_default=True,
              help="Seconds until the command must have started.")
@click.option("--memory", type=click.IntRange(min=256), default=2048, show_default=True, help="Guest MiB.")
@click.option("--cpus", type=click.IntRange(min=0), default=0,
              help="Guest CPUs (0: up to 2, or 1 when several VMs run at once).")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="VMs run at the same time (output lines are then prefixed with the kernel).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
              help="auto: KVM when a probe shows it runs guests, else TCG.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Extra environment for the command.")
@click.option("--cwd", type=click.Path(file_okay=False), default=None,
              help="Directory the command runs in (default: the current one).")
@click.option("--append", default="", metavar="ARGS", help="Extra kernel command line.")
@click.option("-q", "--quiet", is_flag=True, help="Do not stream the command's output.")
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def vmtest(kernels: tuple[str, ...], timeout: float, boot_timeout: float, memory: int, cpus: int, jobs: int,
           accel: str, env: tuple[str, ...], cwd: Optional[str], append: str, quiet: bool, as_json: bool,
           command: tuple[str, ...]) -> None:
    """Boot each kernel in QEMU (host root read-only over 9p, writable overlay) and run COMMAND there."""
    from ..kernels import KernelError, resolve_kernel
    from ..kernels.vm import VMConfig, VMResult, run_in_vm

    jobs = min(jobs, len(kernels))
    config = VMConfig(timeout=timeout, boot_timeout=boot_timeout, memory_mb=memory,
                      cpus=cpus or (1 if jobs > 1 else 0), accel=accel, cwd=cwd, env=_parse_env(env),
                      append=append)
    stream = sys.stderr if as_json else sys.stdout
    lock = threading.Lock()
    cancel = threading.Event()

    def note(text: str) -> None:
        with lock:
            click.echo(f"corebpf vmtest: {text}", err=True)

    # Fetch first, one at a time (apt and the cache lock), so boot failures and downloads do not mix.
    images: list[object] = []
    for spec in kernels:
        try:
            images.append(resolve_kernel(spec, progress=note))
        except KernelError as e:
            images.append(e)

    def one(spec: str, image: object) -> VMResult:
        if isinstance(image, KernelError):
            return VMResult(kernel=spec, release="", status="error", exit_code=None, output="", duration=0.0,
                            boot_seconds=None, accel="", reason=str(image))
        out: Optional[Callable[[str], None]] = None
        prefixer = None
        if not quiet:
            if jobs > 1:
                out = prefixer = _LinePrefixer(image.label, stream, lock)  # type: ignore[attr-defined]
            else:
                def out(text: str) -> None:
                    stream.write(text)
                    stream.flush()
        with lock:
            click.echo(f"=== {image.label} ({image.release}) ===", file=stream)  # type: ignore[attr-defined]
        try:
            result = run_in_vm(image, list(command), config=config, on_output=out,  # type: ignore[arg-type]
                               cancel=cancel)
        except KernelError as e:
            result = VMResult(kernel=image.label, release=image.release, status="error",  # type: ignore[attr-defined]
                              exit_code=None, output="", duration=0.0, boot_seconds=None, accel="", reason=str(e))
        if prefixer is not None:
            prefixer.flush()
        if not result.ok:
            note(f"{result.kernel}: {result.status}: {result.reason}")
            if result.status not in ("ok", "failed", "error", "cancelled") and result.console_tail:
                with lock:
                    click.echo(f"--- console tail ({result.kernel}) ---\n{result.console_tail}", err=True)
        return result

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, spec, image) for spec, image in zip(kernels, images)]
            try:
                results = [f.result() for f in futures]
            except KeyboardInterrupt:
                cancel.set()  # every VM is killed and cleaned up by its own thread
                for f in futures:
                    f.cancel()
                raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        echo_json([r.to_json() for r in results])
    else:
        click.echo()
        table(results, SUMMARY_COLUMNS, title="vmtest")
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)
