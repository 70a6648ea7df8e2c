"""integrity.py: damaged cache shards are detected (not trained on), and a full disk while preparing a memory-mapped
shard is a clear error instead of a SIGBUS."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import zlib

import numpy as np
import pytest

from unfreeze.io import integrity
from unfreeze.io.integrity import DiskFullError, file_checksum, npy_problem, open_memmap_guarded, verify, write_manifest


@pytest.fixture
def shard(tmp_path):
    """A finished shard like cache.write_shard's: two layers, offsets, keys, then the manifest."""
    folder = tmp_path / "shard-0123456789abcdef"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "layer0.npy", rng.standard_normal((300, 64)).astype(np.float16))
    np.save(folder / "layer6.npy", rng.standard_normal((300, 64)).astype(np.float32))
    np.save(folder / "offsets.npy", np.arange(0, 301, 30, dtype=np.int64))
    np.save(folder / "keys.npy", np.arange(10, dtype=np.int64))
    write_manifest(folder)
    return folder


def test_intact_shard_has_no_problems_and_manifest_matches_zlib_and_os(shard):
    assert verify(shard) == []
    manifest = json.loads((shard / "manifest.json").read_text())
    assert manifest["algorithm"] == "crc32"
    assert set(manifest["files"]) == {"layer0.npy", "layer6.npy", "offsets.npy", "keys.npy"}
    for name, entry in manifest["files"].items():
        data = (shard / name).read_bytes()
        assert entry["bytes"] == len(data) == os.path.getsize(shard / name)
        assert entry["crc32"] == f"{zlib.crc32(data):08x}"  # reference: one-shot zlib over the whole file


def test_streamed_checksums_equal_the_one_shot_reference(tmp_path):
    path = tmp_path / "big.bin"
    data = np.random.default_rng(1).integers(0, 256, 9 * 1024 * 1024 + 17, dtype=np.uint8).tobytes()  # > 2 chunks
    path.write_bytes(data)
    assert file_checksum(path, "crc32") == f"{zlib.crc32(data):08x}"
    assert file_checksum(path, "blake2b") == hashlib.blake2b(data, digest_size=16).hexdigest()
    with pytest.raises(ValueError, match="unknown checksum"):
        file_checksum(path, "md5")


def test_blake2b_manifest_verifies_and_detects_a_flip(shard):
    write_manifest(shard, algorithm="blake2b")
    assert verify(shard) == []
    flip(shard / "keys.npy", -1)
    assert any("blake2b" in p and "keys.npy" in p for p in verify(shard))


def flip(path, position):
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


def test_truncated_layer_is_detected_by_length_and_header(shard):
    path = shard / "layer0.npy"
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 10)
    with pytest.raises(ValueError):  # reference: numpy itself refuses the file
        np.load(path)
    problems = verify(shard, checksums=False)
    assert any(p.startswith(f"{path}: ") and "truncated" in p for p in problems)
    assert any(p.startswith(f"{path}: ") and "header" in p for p in problems)


def test_one_flipped_data_byte_is_caught_by_the_checksum_only(shard):
    path = shard / "layer6.npy"
    flip(path, os.path.getsize(path) // 2)
    np.load(path)  # numpy loads it without complaint: this is the failure that would be trained on
    assert verify(shard, checksums=False) == []  # same length, same header: the quick check cannot see it
    problems = verify(shard)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: crc32 ") and "corrupted" in problems[0]


def test_zero_length_layer_is_detected(shard):
    path = shard / "layer0.npy"
    path.write_bytes(b"")
    problems = verify(shard)
    assert any(p.startswith(f"{path}: 0 bytes") for p in problems)
    assert any(p.startswith(f"{path}: unreadable .npy header") for p in problems)


def test_missing_manifest_means_incomplete(shard):
    (shard / "manifest.json").unlink()
    problems = verify(shard)
    assert problems == [f"{shard}: no manifest.json; the shard was never finished (incomplete)"]


def test_missing_and_unlisted_files_and_bad_manifest(shard):
    (shard / "keys.npy").unlink()
    np.save(shard / "layer9.npy", np.zeros((2, 2), np.float16))
    problems = verify(shard)
    assert f"{shard / 'keys.npy'}: missing (listed in manifest.json)" in problems
    assert any(p.startswith(f"{shard / 'layer9.npy'}: not listed") for p in problems)
    (shard / "manifest.json").write_text("{not json")
    assert any("unreadable manifest" in p for p in verify(shard))
    assert verify(shard / "nope") == [f"{shard / 'nope'}: shard folder is missing"]


def test_npy_header_check_agrees_with_numpy(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert npy_problem(good) is None
    longer = tmp_path / "longer.npy"
    longer.write_bytes(good.read_bytes() + b"\x00" * 4)  # trailing garbage: numpy loads it, we flag the size
    assert "needs" in npy_problem(longer)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "pickle" in npy_problem(pickled)
    text = tmp_path / "text.npy"
    text.write_text("hello, not an array")
    assert "unreadable .npy header" in npy_problem(text)


def test_guarded_memmap_writes_and_reads_back(tmp_path):
    path = tmp_path / "layer3.npy"
    array = open_memmap_guarded(path, np.float16, (100, 8))
    assert array.shape == (100, 8) and array.dtype == np.float16
    array[:] = np.arange(800, dtype=np.float16).reshape(100, 8)
    array.flush()
    del array
    np.testing.assert_array_equal(np.load(path), np.arange(800, dtype=np.float16).reshape(100, 8))
    assert npy_problem(path) is None
    assert os.stat(path).st_blocks * 512 >= os.path.getsize(path)  # really allocated, not a sparse file


def test_guarded_memmap_fallback_without_fallocate_keeps_the_header(tmp_path, monkeypatch):
    def refused(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(integrity.os, "posix_fallocate", refused)
    path = tmp_path / "layer1.npy"
    array = open_memmap_guarded(path, np.float32, (50, 4))
    array[:] = 1.5
    del array
    assert npy_problem(path) is None
    assert float(np.load(path).sum()) == 300.0


def test_guarded_memmap_disk_full_injected(tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(integrity.os, "posix_fallocate", full)
    path = tmp_path / "layer1.npy"
    with pytest.raises(DiskFullError, match=rf"^disk full while writing {path}: free space on /\S* \(\d+ MB free\)"):
        open_memmap_guarded(path, np.float32, (50, 4))
    assert not path.exists()


SIGBUS_DEMO = """
import sys, numpy as np
array = np.lib.format.open_memmap(sys.argv[1], mode="w+", dtype=np.float32, shape=(1024, 1024))  # 4 MiB, sparse
array[:] = 1.0  # the tmpfs holds 1 MiB: the page fault that cannot get a page kills the process
print("survived")
"""


@pytest.mark.faults
def test_real_disk_full_plain_memmap_is_sigbus_guarded_is_a_clear_error(tmpfs, child):
    done = child(SIGBUS_DEMO.replace("sys.argv[1]", repr(str(tmpfs / "plain.npy"))))
    assert done.returncode == -signal.SIGBUS, (done.returncode, done.stderr)  # the problem, as it happens today
    (tmpfs / "plain.npy").unlink()
    path = tmpfs / "guarded.npy"
    with pytest.raises(DiskFullError) as info:
        open_memmap_guarded(path, np.float32, (1024, 1024))
    assert str(info.value).startswith(f"disk full while writing {path}: free space on {tmpfs} (")
    assert not path.exists()
    small = open_memmap_guarded(path, np.float32, (64, 1024))  # 256 KiB fits, and can be filled
    small[:] = 2.0
    del small
    assert float(np.load(path).mean()) == 2.0
