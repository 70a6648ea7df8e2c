"""swap.py: a SIGKILL at any step of an --overwrite swap leaves the complete old or the complete new run folder,
a rerun completes, and a user's own RUN.old is never deleted (regression: replace_dir's RUN.old)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unfreeze.errors import UnfreezeError

from unfreeze.io import swap
from unfreeze.io.atomic import ATOMIC_FAULT_POINTS
from io_helpers import SRC as HERE
from unfreeze.io.swap import RECOVER_FAULT_POINTS, SWAP_AREA, SWAP_FAULT_POINTS, journal_path, recover, recover_all, swap_dir

OLD = {"a.txt": "old a", "sub/c.txt": "old c", "sub/deep/d.txt": "old d", "metrics.json": '{"f1": 0.5}'}
NEW = {"a.txt": "new a", "sub/b.txt": "new b", "metrics.json": '{"f1": 0.9}'}
NEWER = {"a.txt": "newer a", "metrics.json": '{"f1": 0.95}'}
USER_OLD = {"keep.txt": "the user's own backup"}


def make(folder: Path, files: dict) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def content(folder: Path) -> dict | None:
    if not folder.is_dir():
        return None
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


def is_finished(run_dir: Path) -> bool:
    """The project's reader, unchanged: a run is finished when metrics.json exists."""
    return (run_dir / "metrics.json").is_file()


def setup(tmp_path, with_old=True):
    runs = tmp_path / "runs"
    final = runs / "r1"
    if with_old:
        make(final, OLD)
    make(runs / "r1.old", USER_OLD)
    stage = make(runs / ".unfinished" / "r1", NEW)
    return runs, final, stage


SWAP = """
import sys
from unfreeze.io.swap import swap_dir
swap_dir(sys.argv[1], sys.argv[2])
"""


def run_swap(stage, final, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "UNFREEZE_FAULT"}
    env["PYTHONPATH"] = str(HERE)
    if fault:
        env["UNFREEZE_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", SWAP, str(stage), str(final)], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def run_recover(final, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "UNFREEZE_FAULT"}
    env["PYTHONPATH"] = str(HERE)
    if fault:
        env["UNFREEZE_FAULT"] = fault
    code = "import sys; from unfreeze.io.swap import recover; recover(sys.argv[1])"
    return subprocess.run([sys.executable, "-c", code, str(final)], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


def test_swap_installs_the_new_folder_and_tidies_up(tmp_path):
    runs, final, stage = setup(tmp_path)
    swap_dir(stage, final)
    assert content(final) == NEW
    assert not stage.exists()
    assert not (runs / SWAP_AREA).exists()
    assert content(runs / "r1.old") == USER_OLD
    assert recover(final) is None


def test_first_install_and_repeated_swaps(tmp_path):
    runs, final, stage = setup(tmp_path, with_old=False)
    swap_dir(stage, final)
    assert content(final) == NEW
    swap_dir(make(tmp_path / "next", NEWER), final)
    assert content(final) == NEWER
    assert sorted(p.name for p in runs.iterdir()) == [".unfinished", "r1", "r1.old"]


def test_refuses_a_missing_source_and_itself(tmp_path):
    with pytest.raises(UnfreezeError, match="not a folder"):
        swap_dir(tmp_path / "nope", tmp_path / "r1")
    make(tmp_path / "r1", OLD)
    with pytest.raises(UnfreezeError, match="itself"):
        swap_dir(tmp_path / "r1", tmp_path / "r1")
    assert content(tmp_path / "r1") == OLD


@pytest.mark.faults
def test_refuses_to_swap_across_file_systems(tmp_path, tmpfs):
    make(tmpfs / "stage", {"metrics.json": "{}"})
    make(tmp_path / "r1", OLD)
    with pytest.raises(UnfreezeError, match="different file systems"):
        swap_dir(tmpfs / "stage", tmp_path / "r1")
    assert content(tmp_path / "r1") == OLD and (tmpfs / "stage").is_dir()


def reached(point, with_old):
    """Without an old folder there is nothing to move aside or delete."""
    return with_old or point not in ("swap.old_moved", "swap.removing_old")


def check_after_crash(final, stage, point, with_old):
    """Right after the kill, before any recovery: old complete, new complete, or (between the two renames only)
    absent with the new folder recoverable."""
    now = content(final)
    index = SWAP_FAULT_POINTS.index(point)
    if point == "swap.old_moved":
        assert now is None and journal_path(final).is_file()
    elif index >= SWAP_FAULT_POINTS.index("swap.new_installed"):
        assert now == NEW
    else:
        assert now == (OLD if with_old else None)
    # before the journal, the caller's staged folder is untouched
    assert stage.is_dir() == (index < SWAP_FAULT_POINTS.index("swap.new_staged"))


@pytest.mark.faults
@pytest.mark.parametrize("with_old", [True, False], ids=["overwrite", "first"])
@pytest.mark.parametrize("point", SWAP_FAULT_POINTS + tuple(f"{p}@1" for p in ATOMIC_FAULT_POINTS))
def test_kill_at_every_step_of_swap_dir(tmp_path, point, with_old):
    runs, final, stage = setup(tmp_path, with_old)
    done = run_swap(stage, final, fault=point)
    name = point.split("@")[0]
    if not reached(name, with_old):
        assert done.returncode == 0, done.stderr
        assert content(final) == NEW
        return
    assert done.returncode == -9, done.stderr  # the point exists and was reached
    if name in SWAP_FAULT_POINTS:
        check_after_crash(final, stage, name, with_old)
    else:  # killed while writing the journal: nothing has moved yet
        assert content(final) == (OLD if with_old else None) and content(stage) == NEW

    action = recover(final)
    after = content(final)
    moved = name in SWAP_FAULT_POINTS and SWAP_FAULT_POINTS.index(name) >= SWAP_FAULT_POINTS.index("swap.new_staged")
    if moved:  # once the staged folder is in the swap area, the new folder wins
        assert after == NEW, (point, action)
    else:  # killed before: the old folder (or none) stays, the caller's staged folder is untouched
        assert after == (OLD if with_old else None), (point, action)
        assert content(stage) == NEW
    assert is_finished(final) == (after is not None)
    assert content(runs / "r1.old") == USER_OLD  # never deleted: the swap did not create it

    # a rerun (a fresh staged folder) completes and leaves nothing behind
    swap_dir(make(tmp_path / "rerun", NEWER), final)
    assert content(final) == NEWER
    assert not journal_path(final).exists()
    assert not (runs / SWAP_AREA).exists()
    assert content(runs / "r1.old") == USER_OLD


@pytest.mark.faults
@pytest.mark.parametrize("recover_point", RECOVER_FAULT_POINTS + ("swap.removing_old@1",))
@pytest.mark.parametrize("swap_point", ["swap.new_staged", "swap.old_moved", "swap.new_installed",
                                        "swap.removing_old@2"])
def test_recovery_is_itself_safe_to_kill(tmp_path, swap_point, recover_point):
    runs, final, stage = setup(tmp_path)
    assert run_swap(stage, final, fault=swap_point).returncode == -9
    before = content(final)
    killed = run_recover(final, fault=recover_point)
    # recovery only moves the old folder aside if the crash came before the swap did, and installs the new one
    # only if the crash came before that
    needed = {"swap.recover.old_moved": ["swap.new_staged"],
              "swap.recover.new_installed": ["swap.new_staged", "swap.old_moved"]}.get(recover_point)
    expected = -9 if needed is None or swap_point in needed else 0
    assert killed.returncode == expected, killed.stderr
    # never a mix; absent only between recovery's own two renames; once new, it stays new
    assert content(final) in (OLD, NEW, None)
    if before == NEW:
        assert content(final) == NEW
    assert run_recover(final).returncode == 0
    assert content(final) == NEW
    assert not (runs / SWAP_AREA).exists() or not any((runs / SWAP_AREA).iterdir())
    assert content(runs / "r1.old") == USER_OLD


def test_recovery_rolls_back_when_the_new_folder_vanished(tmp_path):
    runs, final, stage = setup(tmp_path)
    assert run_swap(stage, final, fault="swap.old_moved").returncode == -9
    for leftover in (runs / SWAP_AREA).glob("r1.*.new"):
        swap._remove_tree(leftover)  # e.g. someone deleted it by hand
    assert recover(final) == "rolled back"
    assert content(final) == OLD


def test_recovery_refuses_to_clobber_a_folder_created_after_the_crash(tmp_path):
    _, final, stage = setup(tmp_path)
    assert run_swap(stage, final, fault="swap.old_moved").returncode == -9
    make(final, {"stray.txt": "made later"})
    with pytest.raises(UnfreezeError, match="created after an interrupted swap"):
        recover(final)
    assert content(final) == {"stray.txt": "made later"}


def test_recover_all_finds_every_interrupted_swap_in_a_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    for name, point in (("a", "swap.old_moved"), ("b", "swap.new_installed"), ("c", None)):
        make(runs / name, OLD)
        done = run_swap(make(tmp_path / f"stage-{name}", NEW), runs / name, fault=point)
        assert done.returncode == (-9 if point else 0)
    assert not is_finished(runs / "a")  # the window between the renames, as a reader sees it
    assert recover_all(runs) == {"a": "rolled forward", "b": "cleaned up"}
    assert all(content(runs / n) == NEW for n in "abc")
    assert not (runs / SWAP_AREA).exists()


def test_concurrent_swappers_in_one_folder_take_turns(tmp_path):
    """Two processes swapping into the same runs/ folder: the .swap lock keeps every install whole."""
    runs = tmp_path / "runs"
    code = """
import sys
from pathlib import Path
from unfreeze.io.swap import swap_dir
tmp, tag = Path(sys.argv[1]), sys.argv[2]
for i in range(15):
    stage = tmp / f"stage-{tag}-{i}"
    (stage / "sub").mkdir(parents=True)
    (stage / "sub" / "x.txt").write_text(f"{tag}{i}")
    (stage / "metrics.json").write_text(f"{tag}{i}")
    swap_dir(stage, tmp / "runs" / ("shared" if i % 2 else f"own-{tag}"))
"""
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("UNFREEZE_FAULT", None)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), tag], env=env, stderr=subprocess.PIPE,
                              text=True) for tag in "AB"]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    for name in ("shared", "own-A", "own-B"):
        files = content(runs / name)
        assert files["metrics.json"] == files["sub/x.txt"]  # one writer's complete folder, never a mix
    assert sorted(p.name for p in runs.iterdir()) == ["own-A", "own-B", "shared"]
