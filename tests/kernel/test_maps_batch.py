"""Batch operations on the real kernel, and the per-element fallback giving the same results."""

from __future__ import annotations

import numpy as np
import pytest

from corebpf import Map
from corebpf.errors import BPFError
from corebpf.maps import possible_cpus

N = 1000


def _records(n: int = N, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keys = np.arange(offset, offset + n, dtype="<u4")
    values = (keys.astype("<u8") * 3 + 7)
    return keys, values


def _sorted(keys: np.ndarray, values: np.ndarray) -> tuple[list[bytes], list[bytes]]:
    pairs = sorted(zip((k.tobytes() for k in keys), (v.tobytes() for v in values)))
    return [k for k, _ in pairs], [v for _, v in pairs]


@pytest.mark.parametrize("fallback", [False, True], ids=["kernel", "fallback"])
def test_update_and_lookup_batch(fallback: bool) -> None:
    keys, values = _records()
    with Map.create("hash", 4, 8, N) as m:
        assert m.update_batch(keys, values, fallback=fallback) == N
        assert len(m) == N
        got_k, got_v = m.lookup_batch(fallback=fallback)
        assert got_k.shape == (N, 4) and got_v.shape == (N, 8) and got_k.dtype == np.uint8
        lookup = dict(zip(got_k.view("<u4").ravel().tolist(), got_v.view("<u8").ravel().tolist()))
        assert lookup == dict(zip(keys.tolist(), values.tolist()))
        assert m[int(keys[5])] == values[5].tobytes()


def test_kernel_and_fallback_paths_agree() -> None:
    keys, values = _records()
    with Map.create("hash", 4, 8, N) as a, Map.create("hash", 4, 8, N) as b:
        a.update_batch(keys, values)
        b.update_batch(keys.tobytes(), bytearray(values.tobytes()), fallback=True)
        ka, va = a.lookup_batch()
        kb, vb = b.lookup_batch(fallback=True)
        assert _sorted(ka, va) == _sorted(kb, vb)
        # The same map read both ways gives the same elements in the same (kernel) order.
        ka2, va2 = a.lookup_batch(fallback=True)
        assert _sorted(ka, va) == _sorted(ka2, va2)


def test_chunked_lookup_matches_one_call() -> None:
    keys, values = _records()
    with Map.create("hash", 4, 8, N) as m:
        m.update_batch(keys, values)
        whole = _sorted(*m.lookup_batch())
        assert _sorted(*m.lookup_batch(chunk=7)) == whole
        assert _sorted(*m.lookup_batch(chunk=1)) == whole


@pytest.mark.parametrize("fallback", [False, True], ids=["kernel", "fallback"])
def test_lookup_and_delete_batch(fallback: bool) -> None:
    keys, values = _records(300)
    with Map.create("hash", 4, 8, 512) as m:
        m.update_batch(keys, values)
        got_k, got_v = m.lookup_and_delete_batch(fallback=fallback)
        assert sorted(got_k.view("<u4").ravel().tolist()) == keys.tolist()
        assert len(m) == 0


@pytest.mark.parametrize("fallback", [False, True], ids=["kernel", "fallback"])
def test_delete_batch(fallback: bool) -> None:
    keys, values = _records(100)
    with Map.create("hash", 4, 8, 128) as m:
        m.update_batch(keys, values)
        assert m.delete_batch(keys[:60], fallback=fallback) == 60
        assert sorted(int.from_bytes(k, "little") for k in m) == keys[60:].tolist()
        with pytest.raises(BPFError):
            m.delete_batch(keys[:1], fallback=fallback)  # already gone


@pytest.mark.parametrize("fallback", [False, True], ids=["kernel", "fallback"])
def test_percpu_batch(fallback: bool) -> None:
    ncpu = possible_cpus()
    keys = np.arange(10, dtype="<u4")
    values = np.zeros((10, ncpu, 8), dtype=np.uint8)
    for cpu in range(ncpu):
        values[:, cpu, :4] = (keys * 10 + cpu).astype("<u4").view(np.uint8).reshape(10, 4)
    with Map.create("percpu_hash", 4, 4, 16) as m:
        assert m.update_batch(keys, values, fallback=fallback) == 10
        got_k, got_v = m.lookup_batch(fallback=fallback)
        assert got_v.shape == (10, ncpu, 8)
        for k, v in zip(got_k.view("<u4").ravel(), got_v):
            assert [int.from_bytes(v[cpu, :4].tobytes(), "little") for cpu in range(ncpu)] == \
                [int(k) * 10 + cpu for cpu in range(ncpu)]
        assert m[int(keys[3])] == [values[3, cpu, :4].tobytes() for cpu in range(ncpu)]


def test_array_batch() -> None:
    with Map.create("array", 4, 8, 64) as m:
        keys = np.arange(64, dtype="<u4")
        m.update_batch(keys, np.arange(64, dtype="<u8") + 1000)
        k1, v1 = m.lookup_batch()
        k2, v2 = m.lookup_batch(fallback=True)
        assert k1.tobytes() == k2.tobytes() == keys.tobytes() and v1.tobytes() == v2.tobytes()


def test_automatic_fallback_for_types_without_batch_ops() -> None:
    # LPM tries have no batch ops: the kernel answers ENOTSUPP and corebpf goes element by element.
    with Map.create("lpm_trie", 8, 4, 16, flags=1) as m:
        keys = np.array([(32, 0x0100000A + i) for i in range(5)], dtype="<u4")
        values = np.arange(5, dtype="<u4")
        assert m.update_batch(keys, values) == 5
        got_k, got_v = m.lookup_batch()
        assert sorted(got_v.view("<u4").ravel().tolist()) == list(range(5))


def test_batch_record_sizes_are_checked() -> None:
    with Map.create("hash", 4, 8, 16) as m:
        with pytest.raises(ValueError, match="4-byte records"):
            m.update_batch(b"\0" * 6, b"\0" * 16)
        with pytest.raises(ValueError, match="2 keys but 1 values"):
            m.update_batch(b"\0" * 8, b"\0" * 8)
        with pytest.raises(TypeError, match="numpy"):
            m.update_batch([1, 2], [3, 4])


def test_lookup_grows_buffers_past_the_initial_room(monkeypatch: pytest.MonkeyPatch) -> None:
    from corebpf.maps import batch

    monkeypatch.setattr(batch, "_INITIAL_RECORDS", 8)
    keys, values = _records(500)
    with Map.create("hash", 4, 8, 512) as m, Map.create("array", 4, 8, 100) as a:
        m.update_batch(keys, values)
        got = _sorted(*m.lookup_batch())
        assert got == _sorted(keys.view(np.uint8).reshape(-1, 4), values.view(np.uint8).reshape(-1, 8))
        assert len(a.lookup_batch()[0]) == 100
