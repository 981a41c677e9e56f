"""Boot one kernel in QEMU and run one command in it: :func:`run_in_vm` -> :class:`VMResult`.

The host's root is shared read-only over 9p (the guest's init puts a tmpfs overlay on top), a scratch
directory read-write (the command script, the exit code, files the command leaves for the host), and
the kernel's own modules read-only. Nothing hangs: a deadline covers boot and command, fatal console
patterns (panic, halted decompressor, init failure) stop the VM at once, and QEMU's whole process group
is killed on every way out, including KeyboardInterrupt.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Callable, Optional, Sequence, Union

from .accel import KVM_CPU, choose_accel, die_with_parent, mark_kvm_broken, qemu_binary
from .console import ConsoleVerdict, scan_console, tail
from .errors import KernelError
from .image import read_boot_header
from .initramfs import (BOOT_TAG, COMMAND_FILE, GUEST_SCRATCH, MODULES_TAG, RC_FILE, ROOT_TAG, SCRATCH_TAG,
                        build_initramfs, find_busybox)
from .modules import ModuleSet
from .resolve import KernelImage

__all__ = ["VMConfig", "VMResult", "run_in_vm", "check_image", "command_script", "kernel_cmdline"]

OutputCallback = Callable[[str], None]
#: Seconds a KVM guest gets to reach the command before ``auto`` falls back to TCG.
KVM_BOOT_GRACE = 30.0


@dataclass
class VMConfig:
    """How to run the VM."""

    timeout: float = 900.0        # boot + command, seconds
    boot_timeout: float = 180.0   # until the command starts
    memory_mb: int = 2048
    cpus: int = 0                 # 0: min(2, host CPUs)
    accel: str = "auto"           # auto | kvm | tcg
    cwd: Optional[str] = None     # where the command runs (default: the caller's cwd)
    env: dict[str, str] = field(default_factory=dict)
    append: str = ""              # extra kernel command line


@dataclass
class VMResult:
    """What happened in one VM. ``status``: ok, failed (non-zero exit), timeout, panic, boot-failed,
    qemu-error, cancelled."""

    kernel: str
    release: str
    status: str
    exit_code: Optional[int]
    output: str
    duration: float
    boot_seconds: Optional[float]
    accel: str
    reason: str = ""
    console_tail: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The command ran and exited 0."""
        return self.status == "ok"

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (``corebpf vmtest --json``)."""
        return asdict(self)


def check_image(kernel: KernelImage) -> None:
    """Refuse images that cannot boot before starting QEMU (missing, truncated, not a bzImage)."""
    try:
        with open(kernel.vmlinuz, "rb") as f:
            head = f.read(0x1000)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise KernelError(f"cannot read kernel image {kernel.vmlinuz}: {e.strerror or e}") from e
    hdr = read_boot_header(head)
    if hdr is None:
        raise KernelError(f"{kernel.vmlinuz} is not a bootable x86 bzImage (no boot protocol >= 2.08 header)")
    if hdr.payload_offset + hdr.payload_length > size:
        raise KernelError(f"{kernel.vmlinuz}: truncated kernel image ({size} bytes, its header says at least "
                          f"{hdr.payload_offset + hdr.payload_length}); re-download it")


def kernel_cmdline(extra: str = "") -> str:
    """The guest kernel's command line: console on ttyS0, our init, reboot (= QEMU exit) on panic."""
    args = [
        # earlyprintk: the bzImage decompressor reports a corrupt payload ("-- System halted") on
        # ttyS0 only with it; otherwise a broken image is a silent hang until the boot deadline.
        "console=ttyS0,115200", "earlyprintk=serial,ttyS0,115200", "rdinit=/init", "panic=-1", "loglevel=5", "8250.nr_uarts=2",
        "mitigations=off", "random.trust_cpu=on", "nowatchdog", "rcupdate.rcu_cpu_stall_suppress=1",
        # bpf in the LSM list so BPF LSM programs attach; unknown names are ignored by older kernels.
        "lsm=capability,landlock,lockdown,yama,apparmor,bpf",
    ]
    return " ".join(args + ([extra] if extra else []))


def command_script(command: Union[str, Sequence[str]], cwd: str, env: dict[str, str]) -> str:
    """The shell script the guest runs in the chroot: environment, cwd, then exec the command."""
    cmd = command if isinstance(command, str) else shlex.join(command)
    lines = ["#!/bin/sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    lines.append(f"cd {shlex.quote(cwd)} || {{ echo 'vmtest: cannot cd to {cwd}' >&2; exit 125; }}")
    lines.append(f"exec {cmd}" if not isinstance(command, str) else cmd)
    return "\n".join(lines) + "\n"


def _guest_env(kernel: KernelImage, config: VMConfig, cwd: str) -> dict[str, str]:
    path = os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for extra in ("/usr/sbin", "/sbin"):
        if extra not in path.split(":"):
            path += ":" + extra
    venv = os.environ.get("VIRTUAL_ENV") or (sys.prefix if sys.prefix != sys.base_prefix else "")
    if venv and f"{venv}/bin" not in path.split(":"):
        path = f"{venv}/bin:{path}"
    env = {
        "PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "USER": "root",
        "TMPDIR": "/tmp", "COREBPF_VMTEST": "1", "COREBPF_VMTEST_KERNEL": kernel.label,
        "COREBPF_VMTEST_SCRATCH": GUEST_SCRATCH, "PYTHONUNBUFFERED": "1",
    }
    if venv:
        env["VIRTUAL_ENV"] = venv
    env.update(config.env)
    return env


def _qemu_args(kernel: KernelImage, config: VMConfig, accel: str, scratch: Path, initrd: Path,
               console: Path) -> list[str]:
    cpus = config.cpus or min(2, os.cpu_count() or 1)
    args = [
        qemu_binary(), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-machine", "pc", "-m", str(config.memory_mb), "-smp", str(cpus),
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", kernel_cmdline(config.append),
        "-chardev", f"file,id=con,path={console}", "-serial", "chardev:con",
        "-chardev", "stdio,id=out,signal=off", "-serial", "chardev:out",
        "-device", "virtio-rng-pci",
        "-virtfs", f"local,path=/,mount_tag={ROOT_TAG},security_model=none,readonly=on,multidevs=remap",
        "-virtfs", f"local,path={scratch},mount_tag={SCRATCH_TAG},security_model=none",
    ]
    if kernel.modules_dir is not None:
        args += ["-virtfs", f"local,path={kernel.modules_dir},mount_tag={MODULES_TAG},security_model=none,"
                            f"readonly=on"]
    boot = _boot_dir(kernel)
    if boot is not None:
        args += ["-virtfs", f"local,path={boot},mount_tag={BOOT_TAG},security_model=none,readonly=on"]
    if accel == "kvm":
        args += ["-accel", "kvm", "-cpu", KVM_CPU]
    else:
        args += ["-accel", "tcg,thread=multi", "-cpu", os.environ.get("COREBPF_VMTEST_TCG_CPU", "max")]
    return args


def _boot_dir(kernel: KernelImage) -> Optional[Path]:
    """The unpacked package's /boot (config-<release>, System.map), shared as the guest's /boot."""
    if kernel.root is None:
        return None
    boot = kernel.root / "boot"
    return boot if (boot / f"config-{kernel.release}").is_file() else None


class _Reader(threading.Thread):
    """Streams the command's serial output to a callback and keeps all of it."""

    def __init__(self, stream: IO[bytes], on_output: Optional[OutputCallback]) -> None:
        super().__init__(daemon=True)
        self._fd = stream.fileno()
        self._on_output = on_output
        self.chunks: list[str] = []

    def run(self) -> None:
        import codecs

        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                break
            if not data:
                break
            text = dec.decode(data).replace("\r\n", "\n").replace("\r", "")
            if text:
                self.chunks.append(text)
                if self._on_output is not None:
                    self._on_output(text)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


_WORK_PREFIX = "corebpf-vmtest-"


def _remove_stale_workdirs() -> None:
    """Work directories of supervisors that were SIGKILLed (their pid is in the name) are removed."""
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob(_WORK_PREFIX + "*-*"):
        pid = d.name[len(_WORK_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def run_in_vm(kernel: KernelImage, command: Union[str, Sequence[str]], *, config: Optional[VMConfig] = None,
              on_output: Optional[OutputCallback] = None,
              cancel: Optional[threading.Event] = None) -> VMResult:
    """Boot ``kernel`` and run ``command`` (argv list, or a shell string) in it. Never raises for what
    happens inside the VM (see :attr:`VMResult.status`); raises :class:`KernelError` when the VM cannot
    even be set up (no QEMU, no busybox, an image that cannot boot, a kernel without 9p). Setting
    ``cancel`` (from another thread) stops the VM: status ``cancelled``."""
    config = config or VMConfig()
    check_image(kernel)
    accel = choose_accel(config.accel)
    busybox = find_busybox()
    modules = ModuleSet.for_kernel(kernel.modules_dir) if kernel.modules_dir is not None else None
    cwd = config.cwd or os.getcwd()
    _remove_stale_workdirs()
    work = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-"))
    try:
        scratch = work / "scratch"
        scratch.mkdir()
        (scratch / COMMAND_FILE).write_text(command_script(command, cwd, _guest_env(kernel, config, cwd)))
        initrd = work / "initramfs.cpio"
        initrd.write_bytes(build_initramfs(busybox, modules.files() if modules else [], kernel.release,
                                           have_modules_share=kernel.modules_dir is not None,
                                           have_boot_share=_boot_dir(kernel) is not None))
        console = work / "console.log"
        if accel == "kvm" and config.accel == "auto":
            # A KVM kernel reaches init in seconds; if it does not, KVM is broken here (nested): use TCG.
            args = _qemu_args(kernel, config, accel, scratch, initrd, console)
            result = _supervise(kernel, config, accel, args, scratch, console, work / "qemu.err", on_output,
                                cancel, boot_timeout=min(KVM_BOOT_GRACE, config.boot_timeout))
            if result.status not in ("qemu-error", "timeout") or result.boot_seconds is not None:
                return result
            mark_kvm_broken()
            accel = "tcg"
            console.unlink(missing_ok=True)
        args = _qemu_args(kernel, config, accel, scratch, initrd, console)
        return _supervise(kernel, config, accel, args, scratch, console, work / "qemu.err", on_output, cancel)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _supervise(kernel: KernelImage, config: VMConfig, accel: str, args: list[str], scratch: Path,
               console: Path, errfile: Path, on_output: Optional[OutputCallback],
               cancel: Optional[threading.Event] = None, boot_timeout: Optional[float] = None) -> VMResult:
    boot_timeout = config.boot_timeout if boot_timeout is None else boot_timeout
    start = time.monotonic()
    boot_seconds: Optional[float] = None
    timed_out = ""
    verdict = ConsoleVerdict()
    with open(errfile, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    reader = _Reader(proc.stdout, on_output)
    reader.start()
    try:
        last_scan = 0.0
        while proc.poll() is None:
            if cancel is not None and cancel.wait(0.2):
                timed_out = "cancelled"
                break
            if cancel is None:
                time.sleep(0.2)
            now = time.monotonic()
            if now - last_scan >= 1.0:
                last_scan = now
                verdict = scan_console(_read(console))
                if boot_seconds is None and verdict.command_started:
                    boot_seconds = now - start
                if verdict.fatal:
                    time.sleep(1.0)  # let the rest of the panic reach the log
                    break
            if boot_seconds is None and now - start > boot_timeout:
                timed_out = f"the kernel did not start the command within {boot_timeout:.0f} s"
                break
            if now - start > config.timeout:
                where = "the command was still running" if boot_seconds is not None else "still booting"
                timed_out = f"timed out after {config.timeout:.0f} s ({where})"
                break
    finally:
        killed_by_us = proc.poll() is None
        _kill(proc)
        reader.join(timeout=5.0)
        if proc.stdout is not None:
            proc.stdout.close()
    duration = time.monotonic() - start
    log = _read(console)
    verdict = scan_console(log)
    if boot_seconds is None and verdict.command_started:
        boot_seconds = duration
    rc_text = _read(scratch / RC_FILE).strip()
    result = VMResult(kernel=kernel.label, release=kernel.release, status="ok", exit_code=None,
                      output=reader.text, duration=duration, boot_seconds=boot_seconds, accel=accel,
                      console_tail=tail(log), warnings=verdict.warnings)
    if rc_text.lstrip("-").isdigit():
        result.exit_code = int(rc_text)
        result.status = "ok" if result.exit_code == 0 else "failed"
        if result.exit_code != 0:
            result.reason = f"the command exited with {result.exit_code}"
    elif timed_out == "cancelled":
        result.status, result.reason = "cancelled", "stopped by the user"
    elif timed_out:
        result.status, result.reason = "timeout", timed_out
    elif verdict.fatal:
        result.status = "panic" if verdict.fatal.startswith("kernel panic") else "boot-failed"
        result.reason = verdict.fatal
    elif proc.returncode not in (0, None) and not verdict.booted:
        result.status = "qemu-error"
        result.reason = f"QEMU exited with {proc.returncode}: {tail(_read(errfile), 5) or 'no message'}"
    elif proc.returncode is not None and proc.returncode < 0 and not killed_by_us:
        result.status = "qemu-error"
        result.reason = f"QEMU was killed by signal {-proc.returncode} before the command finished"
    else:
        result.status = "boot-failed"
        result.reason = ("the VM stopped before the command finished" if verdict.booted
                         else "the kernel never reached init")
    return result
