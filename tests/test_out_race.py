"""Two `unfreeze train --out X` processes racing for one new folder X: both pass the start check (X is new), both
train, and both reach the install at the same moment; exactly one run is installed whole and the other process
fails with one line, its staged files removed.

Synchronised without sleeps: each child stops just before installing its run (`run_dir.swap_dir`), says READY on
stdout and blocks on its stdin; the test releases both only when both are READY, so both have passed every check
that sees X as new before either installs."""
import subprocess
import sys

import pytest
import yaml

from io_helpers import child_env
from tiny import run_config

CHILD = """
import sys
from unfreeze.training import run_dir

real = run_dir.swap_dir


def gated(*args, **kwargs):
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        raise SystemExit(9)
    return real(*args, **kwargs)


run_dir.swap_dir = gated
from unfreeze.cli import app
app(sys.argv[1:])
"""


def _wait_ready(proc, name, err_path):
    for line in proc.stdout:
        if line.strip() == "READY":
            return
    proc.wait()
    pytest.fail(f"{name} exited (rc {proc.returncode}) before installing its run: {err_path.read_text()[-2000:]}")


@pytest.mark.faults
@pytest.mark.slow  # two processes each train a tiny model: ~30 s on 2 busy cores
def test_two_processes_racing_for_one_new_out_folder(tiny_bert, sentiment_csv, tmp_path):
    from unfreeze.io.paths import RUN_ENTRIES
    from unfreeze.training.run_dir import is_finished

    out = tmp_path / "runs" / "race"
    procs = {}
    for seed in (0, 1):
        config = tmp_path / f"seed{seed}.yaml"
        config.write_text(yaml.safe_dump(run_config(tiny_bert, sentiment_csv, seed=seed,
                                                    train={"epochs": 1, "threads": 1, "save_model": False})))
        err = tmp_path / f"seed{seed}.err"
        procs[seed] = (subprocess.Popen([sys.executable, "-c", CHILD, "train", str(config), "--out", str(out),
                                         "--quiet"], env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=err.open("w"), text=True, cwd=tmp_path), err)
    try:
        for seed, (proc, err) in procs.items():
            _wait_ready(proc, f"seed {seed}", err)
        assert not out.exists() or not any(out.iterdir())  # both trained; neither installed yet
        for proc, _ in procs.values():  # release both at once: they race for the swap lock
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        for proc, _ in procs.values():
            proc.stdin.close()
            proc.wait(timeout=300)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
    codes = {seed: proc.returncode for seed, (proc, _) in procs.items()}
    assert sorted(codes.values()) == [0, 2], codes
    winner = next(seed for seed, code in codes.items() if code == 0)
    loser_err = procs[1 - winner][1].read_text()
    errors = [line for line in loser_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in loser_err, loser_err
    assert f"--out {out}" in errors[0] and "another process" in errors[0] and "rerun with another --out" in errors[0]
    # the winner's run, whole and only its own files
    assert is_finished(out) and set(p.name for p in out.iterdir()) <= RUN_ENTRIES
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == winner
    assert not list((out.parent / ".unfinished").glob("*"))  # the loser's staged run removed
