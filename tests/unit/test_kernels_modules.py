"""modules.dep parsing and load order; which modules a kernel needs for the VM."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest

from corebpf.kernels import KernelError
from corebpf.kernels.modules import ModuleSet, load_order, module_name, parse_modules_dep

# Shaped like Debian 6.1's modules.dep (transitive closure, deepest dependency last).
DEP = """\
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/char/hw_random/rng-core.ko
kernel/drivers/char/hw_random/rng-core.ko:
"""


def test_module_name() -> None:
    assert module_name("kernel/fs/9p/9p.ko") == "9p"
    assert module_name("kernel/drivers/char/hw_random/virtio-rng.ko.xz") == "virtio_rng"
    assert module_name("kernel/net/9p/9pnet_virtio.ko.zst") == "9pnet_virtio"


def test_parse_modules_dep() -> None:
    deps = parse_modules_dep(DEP + "garbage line without colon\n")
    assert deps["kernel/fs/9p/9p.ko"] == ["kernel/fs/fscache/fscache.ko", "kernel/net/9p/9pnet.ko",
                                          "kernel/fs/netfs/netfs.ko"]
    assert deps["kernel/fs/netfs/netfs.ko"] == []
    assert len(deps) == 11


def test_load_order_puts_dependencies_first_once() -> None:
    deps = parse_modules_dep(DEP)
    order = load_order(["kernel/drivers/virtio/virtio_pci.ko", "kernel/net/9p/9pnet_virtio.ko",
                        "kernel/fs/9p/9p.ko"], deps)
    assert len(order) == len(set(order))
    for mod in order:
        for dep in deps[mod]:
            assert order.index(dep) < order.index(mod), (dep, mod)
    assert order[-1] == "kernel/fs/9p/9p.ko"
    assert set(order) == {
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko",
        "kernel/drivers/virtio/virtio_pci.ko", "kernel/net/9p/9pnet.ko", "kernel/net/9p/9pnet_virtio.ko",
        "kernel/fs/netfs/netfs.ko", "kernel/fs/fscache/fscache.ko", "kernel/fs/9p/9p.ko"}


def test_load_order_cycle() -> None:
    with pytest.raises(KernelError, match="cycle"):
        load_order(["a.ko"], {"a.ko": ["b.ko"], "b.ko": ["a.ko"]})


def _tree(tmp_path: Path, dep: str, builtin: str = "") -> Path:
    mdir = tmp_path / "lib/modules/6.1.0-99-amd64"
    mdir.mkdir(parents=True)
    (mdir / "modules.dep").write_text(dep)
    (mdir / "modules.builtin").write_text(builtin)
    for line in dep.splitlines():
        path = mdir / line.split(":")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        elf = b"\x7fELF" + path.name.encode()
        path.write_bytes(lzma.compress(elf) if path.name.endswith(".xz") else elf)
    return mdir


def test_module_set_for_kernel(tmp_path: Path) -> None:
    mset = ModuleSet.for_kernel(_tree(tmp_path, DEP))
    assert mset.builtin == [] and mset.missing == []
    files = mset.files()
    names = [n for n, _ in files]
    assert names[0].startswith("00-") and names == sorted(names)
    stems = [n.split("-", 1)[1] for n in names]
    assert stems.index("9p.ko") > stems.index("9pnet.ko") > stems.index("virtio.ko")
    # Compressed modules arrive decompressed.
    data = dict(files)
    rng = next(k for k in data if k.endswith("virtio_rng.ko"))
    assert data[rng] == b"\x7fELFvirtio-rng.ko.xz"
    assert any(k.endswith("rng_core.ko") for k in data)


def test_builtin_modules_are_not_loaded(tmp_path: Path) -> None:
    dep = "kernel/net/9p/9pnet.ko:\nkernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n" \
          "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko\n"
    mset = ModuleSet.for_kernel(_tree(tmp_path, dep, "kernel/drivers/virtio/virtio_pci.ko\n"))
    assert mset.builtin == ["virtio_pci"]
    assert mset.missing == ["overlay", "virtio_rng"]
    assert [p.rsplit("/", 1)[1] for p in mset.order] == ["9pnet.ko", "9pnet_virtio.ko", "9p.ko"]


def test_kernel_without_9p_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="has no 9p"):
        ModuleSet.for_kernel(_tree(tmp_path, "kernel/net/9p/9pnet.ko:\nkernel/net/9p/9pnet_virtio.ko:\n",
                                   "kernel/drivers/virtio/virtio_pci.ko\n"))


def test_missing_modules_dep(tmp_path: Path) -> None:
    with pytest.raises(KernelError, match="no modules.dep"):
        ModuleSet.for_kernel(tmp_path)
