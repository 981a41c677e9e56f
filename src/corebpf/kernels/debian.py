"""Debian kernel packages: which package a spec means, ``apt-get download`` it, unpack it, cache it.

apt runs with a private configuration per suite (sources list, package lists and apt cache under
``<cache>/apt/<suite>/``, an empty dpkg status), so the host's apt state is never read or changed and
suites of other Debian releases can be queried side by side. The archive URI is the host's Debian mirror
(from its apt sources) unless ``COREBPF_DEBIAN_MIRROR`` says otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import KernelError

__all__ = [
    "SERIES", "SUITES", "DebianPackage", "AptSuite", "parse_stanzas", "parse_depends", "host_mirror",
    "find_package", "series_package", "unpack_deb",
]

#: Kernel series -> the suites that ship it (first one that has it wins).
SERIES: dict[str, tuple[str, ...]] = {
    "5.10": ("bullseye",),
    "6.1": ("bookworm",),
    "6.12": ("trixie", "bookworm-backports"),
}
#: Every suite an exact package name is looked up in.
SUITES: tuple[str, ...] = ("bookworm", "bullseye", "trixie", "bookworm-backports")
#: The metapackage that follows a suite's current kernel.
META_PACKAGE = "linux-image-amd64"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: Package lists older than this are refreshed (a failed refresh keeps the old lists).
LISTS_MAX_AGE = 24 * 3600
APT_TIMEOUT = 600
_DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class DebianPackage:
    """One version of one binary package in one suite."""

    name: str
    version: str
    suite: str
    depends: tuple[str, ...] = ()
    installed_size: int = 0  # KiB

    @property
    def is_meta(self) -> bool:
        """A metapackage (``linux-image-amd64``) that only depends on the real image package."""
        return self.installed_size < 1024 and any(d.startswith("linux-image-") for d in self.depends)


def parse_stanzas(text: str) -> list[dict[str, str]]:
    """``apt-cache show`` output -> one dict per stanza (continuation lines joined)."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, key = {}, ""
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            cur[key] = value.strip()
    if cur:
        out.append(cur)
    return out


def parse_depends(value: str) -> tuple[str, ...]:
    """Package names of a Depends field (first alternative of each, versions dropped)."""
    names = []
    for part in value.split(","):
        first = part.split("|")[0].strip()
        name = re.split(r"[\s(:]", first, maxsplit=1)[0]
        if name:
            names.append(name)
    return tuple(names)


def host_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive URI the host's apt uses (deb822 or one-line sources), or Debian's default."""
    env = os.environ.get("COREBPF_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file() or not (f.name.endswith(".list") or f.name.endswith(".sources")):
            continue
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        for uri in re.findall(r"^\s*(?:deb\s+(?:\[[^\]]*\]\s+)?|URIs:\s*)(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return _DEFAULT_MIRROR


class AptSuite:
    """apt-get/apt-cache for one suite with private state under ``root``."""

    def __init__(self, suite: str, root: Path, mirror: Optional[str] = None) -> None:
        self.suite = suite
        self.root = root
        self.mirror = mirror or host_mirror()

    @property
    def _lists(self) -> Path:
        return self.root / "lists"

    def options(self) -> list[str]:
        """The ``-o`` options that make apt use only this private state."""
        return [
            "-o", f"Dir::Etc::SourceList={self.root / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={self._lists}",
            "-o", f"Dir::Cache={self.root / 'cache'}",
            "-o", "Dir::State::status=/dev/null",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", "Dir::Etc::PreferencesParts=/dev/null",
            "-o", "APT::Get::List-Cleanup=0",
            "-o", "Acquire::Languages=none",
            "-o", "APT::Architecture=amd64",
        ]

    def _write_config(self) -> None:
        (self._lists / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        keyring = f"[signed-by={KEYRING}] " if KEYRING.exists() else ""
        (self.root / "sources.list").write_text(f"deb {keyring}{self.mirror} {self.suite} main\n")

    def _has_lists(self) -> bool:
        return self._lists.is_dir() and any("_Packages" in p.name for p in self._lists.iterdir())

    def update(self, *, max_age: float = LISTS_MAX_AGE) -> None:
        """Fetch the suite's package lists unless fresh ones are cached; a failed refresh keeps old ones."""
        self._write_config()
        stamp = self.root / "updated"
        if self._has_lists() and stamp.exists() and time.time() - stamp.stat().st_mtime < max_age:
            return
        proc = _run(["apt-get", *self.options(), "-q", "update"], cwd=self.root)
        if proc.returncode == 0 and self._has_lists():
            stamp.touch()
            return
        if self._has_lists():
            return  # offline: the cached lists still name packages we may have cached
        raise KernelError(f"cannot fetch the package lists of Debian {self.suite} from {self.mirror}: "
                          f"{_tail(proc.stderr or proc.stdout)} (network down? set COREBPF_DEBIAN_MIRROR "
                          f"to a reachable mirror)")

    def show(self, package: str) -> list[DebianPackage]:
        """Every version of ``package`` in this suite (empty if it has none), newest candidate first."""
        self.update()
        proc = _run(["apt-cache", *self.options(), "show", "--no-all-versions", package], cwd=self.root)
        if proc.returncode != 0:
            return []
        pkgs = []
        for st in parse_stanzas(proc.stdout):
            if st.get("Package") != package:
                continue
            try:
                size = int(st.get("Installed-Size", "0") or 0)
            except ValueError:
                size = 0
            pkgs.append(DebianPackage(package, st.get("Version", ""), self.suite,
                                      parse_depends(st.get("Depends", "")), size))
        return pkgs

    def download(self, pkg: DebianPackage, dest: Path) -> Path:
        """``apt-get download`` one package version into ``dest``; the .deb's path."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        proc = _run(["apt-get", *self.options(), "-q", "download", f"{pkg.name}={pkg.version}"], cwd=dest)
        debs = sorted(dest.glob(f"{pkg.name}_*.deb"), key=lambda p: p.stat().st_mtime, reverse=True)
        if proc.returncode != 0 or not debs:
            raise KernelError(f"apt-get download {pkg.name}={pkg.version} ({self.suite}) failed: "
                              f"{_tail(proc.stderr or proc.stdout)}")
        return debs[0]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise KernelError(f"`{cmd[0]}` is missing: fetching Debian kernels needs apt (a Debian/Ubuntu host)")
    env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        raise KernelError(f"`{' '.join(cmd[:1] + cmd[-2:])}` took more than {APT_TIMEOUT} s") from e


def _tail(text: str, lines: int = 3) -> str:
    rows = [r for r in (text or "").strip().splitlines() if r.strip()]
    return " / ".join(rows[-lines:]) or "no output"


def find_package(name: str, apt_root: Path, suites: tuple[str, ...] = SUITES) -> DebianPackage:
    """The real kernel image package behind ``name`` (metapackages followed) in the first suite of
    ``suites`` that has it."""
    for suite in suites:
        apt = AptSuite(suite, apt_root / suite)
        found = apt.show(name)
        if not found:
            continue
        pkg = found[0]
        if pkg.is_meta:
            target = next(d for d in pkg.depends if d.startswith("linux-image-"))
            real = apt.show(target)
            if not real:
                raise KernelError(f"{name} ({suite}) depends on {target}, which {suite} does not have")
            return real[0]
        return pkg
    raise KernelError(f"no Debian package {name!r} in {', '.join(suites)} (check the name with "
                      f"`apt-cache search linux-image`; series specs: "
                      f"{', '.join('debian:' + s for s in SERIES)})")


def series_package(series: str, apt_root: Path) -> DebianPackage:
    """The current kernel image package of a Debian kernel series ("5.10", "6.1", "6.12")."""
    if series not in SERIES:
        raise KernelError(f"unknown Debian kernel series {series!r}; known: "
                          f"{', '.join('debian:' + s for s in SERIES)}, or an exact package name")
    errors = []
    for suite in SERIES[series]:
        try:
            pkg = find_package(META_PACKAGE, apt_root, (suite,))
        except KernelError as e:
            errors.append(str(e))
            continue
        if pkg.name.startswith(f"linux-image-{series}."):
            return pkg
        errors.append(f"{suite}'s {META_PACKAGE} is {pkg.name}, not a {series} kernel")
    raise KernelError(f"no Debian {series} kernel found: " + "; ".join(errors))


def unpack_deb(deb: Path, dest: Path) -> Path:
    """``dpkg -x`` a .deb into ``dest`` (atomically: a half-unpacked tree is never left behind)."""
    if dest.is_dir():
        return dest
    if shutil.which("dpkg-deb") is None:
        raise KernelError("`dpkg-deb` is missing: unpacking Debian kernel packages needs dpkg")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True,
                              timeout=APT_TIMEOUT)
        if proc.returncode != 0:
            raise KernelError(f"{deb}: not a valid Debian package: {_tail(proc.stderr)}")
        os.rename(tmp, dest)
    except subprocess.TimeoutExpired as e:
        raise KernelError(f"unpacking {deb} took more than {APT_TIMEOUT} s") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
