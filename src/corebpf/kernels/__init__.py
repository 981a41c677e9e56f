"""Other kernels: fetch Debian kernel packages, pull vmlinux and BTF out of images, boot them in QEMU.

Public API (stable; ``corebpf compat``, ``corebpf btf minimize`` and ``corebpf vmtest`` build on it)::

    from corebpf.kernels import resolve_kernel, extract_btf, extract_vmlinux, KernelImage, KernelError

    k = resolve_kernel("debian:6.1")        # a KernelImage, fetched once and cached
    k = resolve_kernel("debian:5.10")       # series: debian:5.10 (bullseye), debian:6.1 (bookworm),
                                            #   debian:6.12 (trixie, else bookworm-backports)
    k = resolve_kernel("linux-image-6.1.0-28-amd64")   # an exact Debian package name (any known suite)
    k = resolve_kernel("debian:linux-image-6.1.0-28-amd64")          # the same, explicit
    k = resolve_kernel("/boot/vmlinuz-6.1.0-28-amd64")  # a vmlinuz path (modules from /lib/modules/<release>
                                            #   or the extracted package tree it lives in, when present)
    k = resolve_kernel("./linux-image-6.1.0-28-amd64_6.1.119-1_amd64.deb")  # a downloaded .deb
    k = resolve_kernel("host")              # the running kernel's image (/boot/vmlinuz-$(uname -r))

    k.vmlinuz        # Path of the bootable image (bzImage)
    k.modules_dir    # Path of lib/modules/<release> (modules.dep inside), or None
    k.release        # "6.1.0-28-amd64" (uname -r inside that kernel)
    k.package        # "linux-image-6.1.0-28-amd64" or None; k.version: Debian version or None
    k.spec           # the spec it was resolved from; k.label: short name for tables ("debian:6.1")
    k.btf_bytes()    # extract_btf(k.vmlinuz), cached next to the package tree
    k.btf_path()     # a raw BTF file for BTF.from_file (cached), e.g. for compat targets

    extract_vmlinux(path_or_bytes) -> bytes  # bzImage/vmlinuz -> ELF vmlinux: finds the gzip/xz/lzma/
                                            #   bzip2/zstd/lz4 payload (boot header first, then a magic scan)
    extract_btf(path_or_bytes) -> bytes     # raw BTF from a vmlinuz, a vmlinux ELF, or raw BTF itself
    debian_series() -> dict                 # "5.10" -> ("bullseye",), ... the series resolve_kernel knows
    cache_dir() -> Path                     # $COREBPF_KERNEL_CACHE, else /var/cache/corebpf/kernels (root),
                                            #   else ~/.cache/corebpf/kernels

Every failure (no such package, no network and nothing cached, a corrupt or truncated image, an image
without ``.BTF``) raises :class:`KernelError` (a ``CoreBPFError``) with a message saying what to do.
Fetching uses ``apt-get download`` with a private apt configuration and state under the cache directory;
the host's apt state is never touched.

``resolve_kernel(spec, cache=None, progress=None)``: ``progress`` gets one-line messages ("downloading
linux-image-... (bookworm)") for long steps.

Booting (``corebpf.kernels.vm``)::

    from corebpf.kernels.vm import run_in_vm, VMConfig
    r = run_in_vm(k, ["python3", "-c", "print(1)"],          # argv, or one shell command line string
                  config=VMConfig(timeout=600, boot_timeout=180, memory_mb=2048, cpus=0, accel="auto",
                                  cwd=None, env={}),
                  on_output=print_chunk, cancel=threading_event)
    r.status      # ok | failed (non-zero exit) | timeout | panic | boot-failed | qemu-error | cancelled
    r.exit_code, r.output, r.duration, r.boot_seconds, r.accel, r.reason, r.console_tail, r.warnings

The guest sees the host's root read-only over 9p under a tmpfs overlay (writes stay in the VM), the
package's modules at /lib/modules/<release> and its /boot, bpffs/tracefs/debugfs/securityfs/cgroup2
mounted, the caller's cwd and venv; ``$COREBPF_VMTEST_SCRATCH`` is shared read-write with the host.
``corebpf vmtest`` is the CLI, ``corebpf kernel fetch|btf`` the CLI of the rest.
"""

from __future__ import annotations

from .errors import KernelError
from .image import extract_btf, extract_vmlinux
from .resolve import KernelImage, cache_dir, debian_series, resolve_kernel

__all__ = [
    "KernelError",
    "KernelImage",
    "cache_dir",
    "debian_series",
    "extract_btf",
    "extract_vmlinux",
    "resolve_kernel",
]
