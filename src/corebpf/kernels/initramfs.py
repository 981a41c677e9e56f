"""The VM's initramfs: busybox, the kernel's 9p modules and an init script, as a newc cpio archive.

The init script loads the modules, mounts the host's root (9p, read-only) with a tmpfs overlay on top
when the kernel has overlayfs (so tests can write anywhere; without it /tmp, /run, /var/tmp and $HOME
are tmpfs), mounts proc, sys, dev, bpffs, tracefs, debugfs, securityfs and cgroup2 inside, then
chroots into it and runs the command script the host wrote into the shared scratch directory. The
command's output goes to the second serial port (the host streams it), the kernel console to the first
(kept as the console log); the exit code is written to the scratch directory, then the VM powers off.
Lines starting with ``@@vmtest:`` on the console are progress markers, ``@@vmtest-fail:`` a failure of
init itself (see :mod:`corebpf.kernels.console`).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
from pathlib import Path
from typing import Iterable, Optional

from .errors import KernelError

__all__ = ["CpioWriter", "init_script", "build_initramfs", "find_busybox", "SCRATCH_TAG", "ROOT_TAG",
           "MODULES_TAG", "BOOT_TAG", "GUEST_SCRATCH", "RC_FILE", "COMMAND_FILE"]

ROOT_TAG = "hostroot"
SCRATCH_TAG = "scratch"
MODULES_TAG = "modules"
BOOT_TAG = "kboot"
#: Where the scratch directory appears inside the VM (also exported as $COREBPF_VMTEST_SCRATCH).
GUEST_SCRATCH = "/run/vmtest"
RC_FILE = "rc"
COMMAND_FILE = "command.sh"


class CpioWriter:
    """A minimal ``newc`` (SVR4, no CRC) cpio writer: directories, files, symlinks, device nodes."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name_b = name.lstrip("/").encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._buf.write(header + name_b)
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        """A directory (parents must be added first)."""
        self._entry(name, stat.S_IFDIR | mode)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """A regular file."""
        self._entry(name, stat.S_IFREG | mode, data)

    def add_symlink(self, name: str, target: str) -> None:
        """A symbolic link."""
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """A character device node (``/dev/console`` must exist before init runs)."""
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self) -> bytes:
        """The archive, with its ``TRAILER!!!`` entry."""
        self._entry("TRAILER!!!", 0)
        return self._buf.getvalue()


#: The kernel's module-autoload helper: the real modprobe inside the new root.
MODPROBE_HELPER = """#!/bin/busybox sh
exec /bin/busybox chroot /newroot /sbin/modprobe "$@"
"""


def find_busybox() -> Path:
    """A statically linked busybox (Debian's busybox-static installs /bin/busybox)."""
    for cand in (os.environ.get("COREBPF_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")):
        if cand and Path(cand).is_file():
            path = Path(cand)
            with open(path, "rb") as f:
                head = f.read(4096)
            if head.startswith(b"\x7fELF") and b"ld-linux" not in head and b"/lib64/ld" not in head:
                return path
    raise KernelError("no static busybox found: install busybox-static (apt-get install busybox-static) "
                      "or point COREBPF_BUSYBOX at one")


def init_script(release: str, *, have_modules_share: bool, have_boot_share: bool = False) -> str:
    """The VM's /init (busybox sh). ``release`` names the modules directory inside the guest; the boot
    share (the package's /boot: config-<release>, System.map) is mounted on /boot, where libbpf and
    corebpf look for the kernel config when there is no /proc/config.gz."""
    boot_mount = ""
    if have_boot_share:
        boot_mount = (f"mkdir -p /newroot/boot 2>/dev/null; mount -t 9p -o trans=virtio,version=9p2000.L,ro "
                      f"{BOOT_TAG} /newroot/boot || echo \"@@vmtest: no boot share\" > /dev/console")
    modules_mount = ""
    if have_modules_share:
        modules_mount = f"""
# The kernel's own modules (modprobe veth, sch_ingress...) appear where modprobe looks for them.
moddir=/newroot/lib/modules/{release}
if ! mkdir -p $moddir 2>/dev/null; then
  mount -t tmpfs -o mode=0755 modtmp /newroot/lib/modules && mkdir -p $moddir
fi
mount -t 9p -o trans=virtio,version=9p2000.L,ro {MODULES_TAG} $moddir || echo "@@vmtest: no modules share" > /dev/console
"""
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "@@vmtest-fail: $*" > /dev/console; poweroff -f; sleep 5; exit 1; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "@@vmtest: init started at $(cut -d" " -f1 /proc/uptime)" > /dev/console
for m in /modules/*.ko; do
  [ -e "$m" ] || continue
  insmod "$m" 2>/dev/null || grep -q "^$(basename "$m" .ko | cut -d- -f2- | tr - _) " /proc/modules || echo "@@vmtest: insmod $m failed" > /dev/console
done
mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 {ROOT_TAG} /lower || fail "cannot mount the host root over 9p (virtio/9p support missing?)"
overlay=no
if mount -t tmpfs -o mode=0755 upper /upper && mkdir -p /upper/u /upper/w && \\
   mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot 2>/dev/null; then
  overlay=yes
else
  mount --move /lower /newroot || mount -o bind /lower /newroot || fail "cannot set up the new root"
  for d in /tmp /run /var/tmp /root; do mount -t tmpfs -o mode=1777 tmpfs /newroot$d || echo "@@vmtest: no tmpfs on $d" > /dev/console; done
fi
echo "@@vmtest: root mounted (overlay=$overlay)" > /dev/console
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 shm /newroot/dev/shm 2>/dev/null
# /tmp stays the host's (writable through the overlay): a checkout under /tmp, as CI may use, must be visible
[ "$overlay" = yes ] && mount -t tmpfs -o mode=0755 run /newroot/run
mount -t bpf bpf /newroot/sys/fs/bpf || echo "@@vmtest: no bpffs" > /dev/console
mount -t tracefs tracefs /newroot/sys/kernel/tracing 2>/dev/null || echo "@@vmtest: no tracefs" > /dev/console
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null || echo "@@vmtest: no debugfs" > /dev/console
mount -t securityfs securityfs /newroot/sys/kernel/security 2>/dev/null || echo "@@vmtest: no securityfs" > /dev/console
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup 2>/dev/null || echo "@@vmtest: no cgroup2" > /dev/console
mkdir -p /newroot{GUEST_SCRATCH}
mount -t 9p -o trans=virtio,version=9p2000.L,rw {SCRATCH_TAG} /newroot{GUEST_SCRATCH} || fail "cannot mount the scratch directory"
{modules_mount}
{boot_mount}
# Loopback up (tests use 127.0.0.1); module autoload (ip link add type veth) runs the kernel's modprobe
# helper in this initramfs root: send it into the new root, where modprobe and the modules are.
ifconfig lo 127.0.0.1 up 2>/dev/null || ip link set lo up 2>/dev/null || echo "@@vmtest: loopback down" > /dev/console
echo /bin/modprobe-newroot > /proc/sys/kernel/modprobe 2>/dev/null
stty -F /dev/ttyS1 raw -echo 2>/dev/null
echo "@@vmtest: running command at $(cut -d" " -f1 /proc/uptime)" > /dev/console
chroot /newroot /bin/sh {GUEST_SCRATCH}/{COMMAND_FILE} > /dev/ttyS1 2>&1 < /dev/null
rc=$?
echo "$rc" > /newroot{GUEST_SCRATCH}/{RC_FILE}
echo "@@vmtest: command exited with $rc at $(cut -d" " -f1 /proc/uptime)" > /dev/console
sync
poweroff -f
sleep 10
"""


def build_initramfs(busybox: Path, modules: Iterable[tuple[str, bytes]], release: str, *,
                    have_modules_share: bool = False, have_boot_share: bool = False,
                    extra: Optional[dict[str, bytes]] = None) -> bytes:
    """The initramfs (uncompressed newc cpio) for one kernel: busybox, numbered modules, /init."""
    cpio = CpioWriter()
    for d in ("bin", "dev", "proc", "sys", "modules", "lower", "upper", "newroot", "tmp"):
        cpio.add_dir(d)
    cpio.add_chardev("dev/console", 5, 1)
    try:
        cpio.add_file("bin/busybox", busybox.read_bytes(), 0o755)
    except OSError as e:
        raise KernelError(f"cannot read busybox {busybox}: {e.strerror or e}") from e
    cpio.add_symlink("bin/sh", "busybox")
    for name, data in modules:
        cpio.add_file(f"modules/{name}", data)
    for name, data in (extra or {}).items():
        cpio.add_file(name, data)
    cpio.add_file("bin/modprobe-newroot", MODPROBE_HELPER.encode(), 0o755)
    cpio.add_file("init", init_script(release, have_modules_share=have_modules_share,
                                      have_boot_share=have_boot_share).encode(), 0o755)
    return cpio.finish()
