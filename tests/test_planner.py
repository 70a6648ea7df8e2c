"""The planner interface (study/planner.py): one loop (`drive`) runs any planner — a fake one, the grid, seed
racing, a search's trials — on any executor, batch by batch, handing each batch's outcomes back. The executors
here are stand-ins that record batches and return outcomes without training, so each test checks the planning
alone, in well under a second per batch."""
import pickle

import pytest

from tiny import run_config
from unfreeze.config.study import StudyConfig
from unfreeze.io import read_json
from unfreeze.study.execute import RunOutcome
from unfreeze.study.grid import expand
from unfreeze.study.planner import GridPlanner, SilentReport, drive


class RecordingExecutor:
    """Runs nothing: records each batch and returns an outcome per run from `score(job)` (a val score; None: the
    run failed; "pruned": the pruner stopped it)."""

    name = "fake"

    def __init__(self, score=lambda job: 0.5, slots: int = 1):
        self.score, self._slots, self.batches, self.seen = score, slots, [], set()

    def slots(self) -> int:
        return self._slots

    def run(self, jobs, study_dir, pool, top_ks, report):
        self.batches.append([job.run_id for job in jobs])
        assert len({job.run_id for job in jobs}) == len(jobs), "two runs of one batch share a run folder"
        outcomes = []
        for job in jobs:
            score, skipped = self.score(job), job.run_id in self.seen
            self.seen.add(job.run_id)
            if score == "pruned":
                run_dir = study_dir / "runs" / job.run_id
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "pruned.json").write_text('{"epoch": 1}')
                outcome = RunOutcome(job.run_id, job.arm, ok=True, pruned=True, skipped=skipped)
            elif score is None:
                outcome = RunOutcome(job.run_id, job.arm, ok=False, error="RuntimeError: boom")
            else:
                outcome = RunOutcome(job.run_id, job.arm, ok=True, skipped=skipped,
                                     metrics={"val": {"f1_macro": score}})
            report(outcome)
            outcomes.append(outcome)
        return outcomes


class CountingPlanner:
    """A planner of three batches of two made-up runs; records what the loop handed back."""

    def __init__(self, jobs):
        self.jobs, self.handed_back, self.rooms = jobs, [], []

    def next_runs(self, finished, room):
        self.handed_back.append([o.run_id for o in finished])
        self.rooms.append(room)
        batch, self.jobs = self.jobs[:2], self.jobs[2:]
        return batch

    def describe(self):
        return "counting"


def grid_study(model, data, **extra) -> StudyConfig:
    base = run_config(model, data, train={"epochs": 1, "threads": 1, "save_model": False})
    return StudyConfig.model_validate({"name": "t", "base": base, "baseline": False, **extra})


def test_drive_runs_a_planner_batch_by_batch_and_hands_back_each_batchs_outcomes(tiny_bert, sentiment_csv,
                                                                                  tmp_path):
    jobs = expand(grid_study(tiny_bert, sentiment_csv, seeds=[0, 1, 2], grid={"optim.lr": [1e-3, 1e-2]}))
    planner, executor = CountingPlanner(list(jobs)), RecordingExecutor(slots=3)
    outcomes = drive(planner, executor, tmp_path, None, {}, SilentReport())
    ids = [j.run_id for j in jobs]
    assert executor.batches == [ids[0:2], ids[2:4], ids[4:6]]
    assert planner.handed_back == [[], ids[0:2], ids[2:4], ids[4:6]]  # the last call plans nothing: done
    assert planner.rooms == [3, 3, 3, 3] and [o.run_id for o in outcomes] == ids


def test_grid_planner_runs_its_list_in_one_batch(tiny_bert, sentiment_csv, tmp_path):
    jobs = expand(grid_study(tiny_bert, sentiment_csv, seeds=[0, 1], grid={"optim.lr": [1e-3, 1e-2]}))
    executor = RecordingExecutor()
    drive(GridPlanner(jobs), executor, tmp_path, None, {}, SilentReport())
    assert executor.batches == [[j.run_id for j in jobs]]
    assert drive(GridPlanner([]), executor, tmp_path, None, {}, SilentReport()) == []


def test_racing_runs_seed_by_seed_through_the_same_loop_and_stops_arms_between_seeds(tiny_bert, sentiment_csv,
                                                                                      tmp_path, monkeypatch):
    """RacingPlanner hands out one seed at a time; an arm that a look stops gets none of its later seeds, the
    progress total drops by them, and racing.json records the stop."""
    import unfreeze.study.racing as racing

    cfg = grid_study(tiny_bert, sentiment_csv, seeds=[0, 1, 2, 3], grid={"optim.lr": [1e-3, 1e-2, 1e-1]},
                     racing={"min_seeds": 2})
    jobs = expand(cfg)
    worst = jobs[2].arm
    looks = []

    def decide(study_dir, jobs, alive, alpha, cfg, seeds):
        looks.append(list(seeds))
        return {worst: {"after_seeds": len(seeds), "leader": jobs[0].arm, "leader_seeds": len(seeds),
                        "delta_val": -0.3, "p_value": 0.001, "p_holm": 0.003}} if worst in alive else {}

    monkeypatch.setattr(racing, "decide", decide)
    reporter = SilentReport()
    reporter.total = len(jobs)
    executor = RecordingExecutor()
    drive(racing.RacingPlanner(cfg, jobs, tmp_path, reporter, lambda *_: None), executor, tmp_path, None, {},
          reporter)
    arms_of = {j.run_id: (j.arm, j.seed) for j in jobs}
    assert [sorted({arms_of[r][1] for r in batch}) for batch in executor.batches] == [[0], [1], [2], [3]]
    assert [len(batch) for batch in executor.batches] == [3, 3, 2, 2]  # stopped after seed 1
    assert looks == [[0, 1], [0, 1, 2]] and reporter.total == len(jobs) - 2
    assert list(read_json(tmp_path / "racing.json")["stopped"]) == [worst]


@pytest.fixture
def search(tiny_bert, sentiment_csv):
    pytest.importorskip("optuna")

    def make(**spec):
        base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
        return StudyConfig.model_validate({"name": "s", "base": base, "baseline": False, "search": {
            "sampler": "random", "trials": 4, "seed": 0, "space": {"freeze": ["head", {"top_k": 1}, "all"]},
            **spec}})
    return make


def test_search_trials_go_through_the_same_loop_and_each_outcome_is_told(search, tmp_path):
    """TrialPlanner asks up to `slots` trials per batch and tells each run's outcome: a score, a pruned run and a
    failed run end as COMPLETE, PRUNED and FAIL trials (the failure with its error)."""
    from unfreeze.study.trials import TrialPlanner

    s = search(sampler="grid", trials=3)
    scores = {"head": 0.7, "top-1": "pruned", "all": None}
    executor = RecordingExecutor(lambda job: scores[job.arm], slots=2)
    planner = TrialPlanner(s, tmp_path, lambda *_: None)
    drive(planner, executor, tmp_path, None, {}, SilentReport())
    assert [len(batch) for batch in executor.batches] == [2, 1]
    states = {t.user_attrs["arm"]: t.state.name for t in planner.opt.get_trials(deepcopy=False)}
    assert states == {"head": "COMPLETE", "top-1": "PRUNED", "all": "FAIL"}
    failed = [t for t in planner.opt.get_trials(deepcopy=False) if t.state.name == "FAIL"]
    assert failed[0].user_attrs["error"] == "RuntimeError: boom"


def test_a_config_asked_twice_waits_for_the_next_batch_and_is_told_its_runs_result(search, tmp_path):
    """Optuna may suggest one config for two trials at once (one choice here): they never share a batch (two runs
    writing one folder), and the second is told the first's finished run instead of being trained again."""
    from unfreeze.study.trials import TrialPlanner

    s = search(trials=3, space={"freeze": ["head"]})
    executor = RecordingExecutor(slots=3)
    planner = TrialPlanner(s, tmp_path, lambda *_: None)
    drive(planner, executor, tmp_path, None, {}, SilentReport())
    assert [len(batch) for batch in executor.batches] == [1, 1, 1]
    trials = planner.opt.get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 and {t.value for t in trials} == {0.5}


def test_a_trial_run_travels_to_a_worker_without_the_drivers_optuna_objects(search, tmp_path):
    """A Ray worker receives the trial's run pickled: the driver's live Optuna trial stays behind (the worker
    opens the storage by URL), and the run's `info` names its trial."""
    from unfreeze.study.trials import TrialPlanner

    planner = TrialPlanner(search(trials=1), tmp_path, lambda *_: None)
    (job,) = planner.next_runs([], 1)
    assert job.trial.local is not None and job.info["trial"] == 0
    copy = pickle.loads(pickle.dumps(job))
    assert copy.trial.local is None and copy.run_id == job.run_id and copy.trial.trial_id == job.trial.trial_id
    assert copy.trial.handle().number == 0  # opened on the storage, as in a worker
