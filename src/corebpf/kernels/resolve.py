"""``resolve_kernel(spec)``: from a spec (path, .deb, ``debian:6.1``, package name, ``host``) to a
:class:`KernelImage` on local disk, fetching and caching Debian packages as needed."""

from __future__ import annotations

import fcntl
import os
import platform
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from . import debian
from .errors import KernelError
from .image import extract_btf, image_release

__all__ = ["KernelImage", "resolve_kernel", "cache_dir", "debian_series", "tree_image"]

Progress = Callable[[str], None]


def cache_dir() -> Path:
    """Where fetched kernels live: ``$COREBPF_KERNEL_CACHE``, else /var/cache/corebpf/kernels when
    writable (root), else ~/.cache/corebpf/kernels."""
    env = os.environ.get("COREBPF_KERNEL_CACHE")
    if env:
        return Path(env)
    system = Path("/var/cache/corebpf/kernels")
    try:
        system.mkdir(parents=True, exist_ok=True)
        if os.access(system, os.W_OK):
            return system
    except OSError:
        pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "corebpf" / "kernels"


def debian_series() -> dict[str, tuple[str, ...]]:
    """Debian kernel series ``resolve_kernel("debian:<series>")`` knows, with the suites that ship them."""
    return dict(debian.SERIES)


@dataclass
class KernelImage:
    """A kernel on local disk: its bootable image, its modules and what it is."""

    vmlinuz: Path
    release: str
    spec: str
    modules_dir: Optional[Path] = None
    package: Optional[str] = None
    version: Optional[str] = None
    root: Optional[Path] = None  # the unpacked package tree, if any
    _btf: Optional[bytes] = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """A short name for tables: the spec for ``debian:`` series, else the release."""
        if self.spec.startswith("debian:") or self.spec == "host":
            return self.spec
        return self.release or self.vmlinuz.name

    def btf_bytes(self) -> bytes:
        """Raw BTF of this kernel (from its image; computed once, cached on disk when possible)."""
        if self._btf is None:
            path = self._btf_cache_path()
            if path is not None and path.is_file():
                self._btf = path.read_bytes()
            else:
                self._btf = extract_btf(self.vmlinuz)
                if path is not None:
                    _write_atomic(path, self._btf)
        return self._btf

    def btf_path(self) -> Path:
        """A raw BTF file of this kernel (cached), for ``BTF.from_file`` and ``compat --btf``."""
        path = self._btf_cache_path()
        if path is None:
            path = cache_dir() / "btf" / f"{self.release or self.vmlinuz.name}.btf"
        if not path.is_file():
            _write_atomic(path, self.btf_bytes())
        return path

    def _btf_cache_path(self) -> Optional[Path]:
        if self.root is not None:
            return self.root / "vmlinux.btf"
        try:
            st = self.vmlinuz.stat()
        except OSError:
            return None
        return cache_dir() / "btf" / f"{self.release or 'image'}-{st.st_size}-{int(st.st_mtime)}.btf"


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time


def _modules_for(release: str, roots: list[Path]) -> Optional[Path]:
    for root in roots:
        for sub in ("lib/modules", "usr/lib/modules"):
            cand = root / sub / release
            if (cand / "modules.dep").is_file():
                return cand
    return None


def _depmod(tree: Path, release: str) -> None:
    """Packages ship modules without modules.dep (the postinst runs depmod): generate it in the tree."""
    if (tree / "lib").exists() or not (tree / "usr/lib/modules" / release).is_dir():
        base_ok = (tree / "lib/modules" / release).is_dir()
    else:
        os.symlink("usr/lib", tree / "lib")  # usrmerged package (trixie): depmod -b looks in lib/modules
        base_ok = True
    depmod = shutil.which("depmod") or next((p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.path.exists(p)), None)
    if not base_ok or depmod is None:
        return
    try:
        subprocess.run([depmod, "-b", str(tree), release], capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        pass  # no modules.dep: the VM boots with built-in drivers only, and says so


def tree_image(tree: Path, spec: str, package: Optional[str] = None,
               version: Optional[str] = None) -> KernelImage:
    """The kernel in an unpacked linux-image package tree (``boot/vmlinuz-<release>``)."""
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    if not images:
        raise KernelError(f"{tree}: no boot/vmlinuz-* inside (not a kernel image package?)")
    vmlinuz = images[-1]
    release = vmlinuz.name[len("vmlinuz-"):]
    modules = _modules_for(release, [tree])
    if modules is None and os.access(tree, os.W_OK):
        _depmod(tree, release)
        modules = _modules_for(release, [tree])
    return KernelImage(vmlinuz=vmlinuz, release=release, spec=spec, modules_dir=modules,
                       package=package, version=version, root=tree)


def _file_image(path: Path, spec: str) -> KernelImage:
    release = image_release(path)
    if not release and path.name.startswith("vmlinuz-"):
        release = path.name[len("vmlinuz-"):]
    roots = [path.parent.parent, Path("/")] if path.parent.name == "boot" else [Path("/")]
    return KernelImage(vmlinuz=path, release=release, spec=spec, modules_dir=_modules_for(release, roots))


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One fetcher per cache at a time (parallel CI jobs, the compat helper)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _say(progress: Optional[Progress], msg: str) -> None:
    if progress is not None:
        progress(msg)


def _cached_trees(cache: Path, prefix: str) -> list[Path]:
    trees = cache / "trees"
    if not trees.is_dir():
        return []
    found = [p for p in trees.iterdir() if p.is_dir() and p.name.startswith(prefix) and ".tmp" not in p.name]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _fetch(pkg: debian.DebianPackage, cache: Path, spec: str, progress: Optional[Progress]) -> KernelImage:
    tree = cache / "trees" / f"{pkg.name}_{pkg.version}"
    if not tree.is_dir():
        debs = cache / "debs"
        deb = next(iter(sorted(debs.glob(f"{pkg.name}_{_quote(pkg.version)}_*.deb"))), None) if debs.is_dir() else None
        if deb is None:
            _say(progress, f"downloading {pkg.name} {pkg.version} ({pkg.suite})")
            deb = debian.AptSuite(pkg.suite, cache / "apt" / pkg.suite).download(pkg, debs)
        _say(progress, f"unpacking {deb.name}")
        debian.unpack_deb(deb, tree)
    return tree_image(tree, spec, pkg.name, pkg.version)


def _quote(version: str) -> str:
    return version.replace(":", "%3a")


def _resolve_debian(name: str, spec: str, cache: Path, progress: Optional[Progress]) -> KernelImage:
    apt_root = cache / "apt"
    with _locked(cache):
        if name in debian.SERIES or re.fullmatch(r"\d+\.\d+", name):
            try:
                pkg = debian.series_package(name, apt_root)
            except KernelError as e:
                # Offline: the newest cached kernel of that series still answers.
                cached = _cached_trees(cache, f"linux-image-{name}.")
                if not cached:
                    raise
                print(f"corebpf: warning: {e}; using the cached {cached[0].name}", file=sys.stderr)
                pkgname, _, version = cached[0].name.partition("_")
                return tree_image(cached[0], spec, pkgname, version)
            return _fetch(pkg, cache, spec, progress)
        if not name.startswith("linux-image-"):
            raise KernelError(f"{spec!r}: expected debian:<series> ({', '.join(debian.SERIES)}) or a "
                              f"linux-image-* package name")
        cached = _cached_trees(cache, f"{name}_")
        if cached:
            pkgname, _, version = cached[0].name.partition("_")
            return tree_image(cached[0], spec, pkgname, version)
        return _fetch(debian.find_package(name, apt_root), cache, spec, progress)


def resolve_kernel(spec: str, *, cache: Optional[Path] = None, progress: Optional[Progress] = None) -> KernelImage:
    """A :class:`KernelImage` for ``spec``: a vmlinuz path, an unpacked package tree, a ``.deb``,
    ``host``, ``debian:<series>`` (5.10, 6.1, 6.12), ``debian:<package>`` or a ``linux-image-*`` package
    name. Debian packages are downloaded once into :func:`cache_dir` and reused (also offline)."""
    spec = spec.strip()
    if not spec:
        raise KernelError("empty kernel spec")
    cache = cache or cache_dir()
    if spec == "host":
        release = platform.release()
        path = Path(f"/boot/vmlinuz-{release}")
        if not path.is_file():
            raise KernelError(f"the running kernel's image {path} does not exist (boot it from a path instead)")
        return KernelImage(vmlinuz=path, release=release, spec=spec, modules_dir=_modules_for(release, [Path("/")]))
    if spec.startswith("debian:"):
        return _resolve_debian(spec[len("debian:"):], spec, cache, progress)
    path = Path(spec).expanduser()
    if path.is_dir():
        return tree_image(path, spec)
    if path.is_file():
        if path.suffix == ".deb":
            with _locked(cache):
                tree = debian.unpack_deb(path, cache / "trees" / path.stem)
            pkgname, _, rest = path.stem.partition("_")
            return tree_image(tree, spec, pkgname, rest.rsplit("_", 1)[0] or None)
        return _file_image(path, spec)
    if spec.startswith("linux-image-"):
        return _resolve_debian(spec, spec, cache, progress)
    if "/" in spec or spec.startswith("."):
        raise KernelError(f"kernel image {spec} does not exist")
    raise KernelError(f"unknown kernel spec {spec!r}: give a vmlinuz path, a .deb, 'host', "
                      f"debian:<series> ({', '.join(debian.SERIES)}) or a linux-image-* package name")
