"""Reading ``/proc/<pid>/fdinfo/<fd>``: the kernel's ``key:\tvalue`` lines about one open file."""

from __future__ import annotations

import os

# readlink(/proc/<pid>/fd/<n>) of each BPF object kind -> (inventory kind, fdinfo key of its id)
ANON_INODES: dict[str, tuple[str, str]] = {
    "anon_inode:bpf-prog": ("prog", "prog_id"),
    "anon_inode:bpf-map": ("map", "map_id"),
    "anon_inode:bpf_link": ("link", "link_id"),  # links made by BPF_LINK_CREATE / raw_tracepoint_open
    "anon_inode:bpf-link": ("link", "link_id"),  # the same link reopened from a pin or by id
    "anon_inode:btf": ("btf", "btf_id"),
}


def read_fdinfo(path: str) -> dict[str, str]:
    """The fields in the first 4 KiB of one fdinfo file (ids, types and sizes come first; only
    kprobe_multi/uprobe_multi links list more after them); empty when it vanished or cannot be read."""
    # os.open/os.read: a buffered file object costs several times more, and a host scan reads thousands
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        data = os.read(fd, 4096)
    except OSError:
        return {}
    finally:
        os.close(fd)
    fields: dict[str, str] = {}
    for line in data.decode(errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def int_field(fields: dict[str, str], key: str) -> int | None:
    """An integer fdinfo field (decimal or ``0x`` hex), or None when absent or malformed."""
    value = fields.get(key)
    if value is None:
        return None
    try:
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    except ValueError:
        return None


__all__ = ["ANON_INODES", "read_fdinfo", "int_field"]
