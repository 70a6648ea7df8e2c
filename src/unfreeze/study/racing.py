"""Seed racing (`racing: true` in a study file): every arm's first seeds, then more seeds only for the arms that
the seed-aware comparison cannot yet call worse than the leader.

Why on validation: the leader is the arm with the best mean *validation* score, and the decision to stop an arm
uses its *validation* predictions. Deciding on test and then reporting test would be selection on the test set
(the arms that happened to test well would get more seeds); validation is what picks the best arm anyway.

The rule (what keeps racing from dropping an arm that is as good as the leader):
- an arm can only be stopped once it and the leader have `min_seeds` (default 3) finished runs: the seed-aware
  test (`metrics.compare`) needs ≥ 3 seeds to estimate a seed variance worth a decision, so a
  study with 3 seeds gains nothing from racing and one with 5 seeds saves at most 2 of 5 runs per stopped arm;
- after each further seed (a "look") every running arm is compared with the leader on validation by the report's
  comparison family (`metrics.decide.compare_family`), p-values Bonferroni-adjusted over every pair of running
  arms (the leader is picked on the very predictions it is then compared on, and a family over all pairs holds
  whichever arm that pick makes the leader); an arm is stopped when its adjusted p is below alpha / looks
  (Bonferroni over the looks: the same arm is tested again after every seed) and it is behind the leader;
- a stopped arm keeps its finished runs: the report shows it with the seeds it ran and says why it stopped.
Measured with the rule before issue #23 (Holm over the comparisons with the leader, Welch df) by
tests/test_racing.py (the generative model of benchmarks/calibration.py, 4 equal arms, 300 validation examples,
alpha 0.05, 300 studies): with 5 seeds and min_seeds 3, an arm as good as the leader was stopped in 0.4 % (seed sd
0.005) / 2.6 % (seed sd 0.02) of cases, any of the three in 1.0 % / 6.3 % of studies; an arm 5 points worse in
86 % / 44 %. The all-pairs family (Satterthwaite df) is more conservative; the same tests still hold their
bounds with it (per-arm false stops ≤ 5 %, any ≤ 10 % of studies, an arm 8 points worse stopped in ≥ 70 %); the
rates themselves were not re-measured.
What racing saves: an arm stopped after m of S seeds skips (S − m) / S of its runs. With the default min_seeds 3
that is nothing for S = 3 (the demo) and 2 / 5 of a stopped arm's runs for S = 5. `racing: {min_seeds: 2}` can
stop after 2 seeds (the same test with 1 df of seed variance per arm: measured per-arm false stops 0.6 % / 1.3 %
for 3 seeds, but power only 32 % / 23 % at a 5-point gap), saving 1 / 3 of a stopped arm's runs when S = 3.
Arms whose validation examples differ from the leader's (a grid over data.split_seed) are never compared with it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path


from unfreeze.io import write_json
from unfreeze.metrics.compare import score_split
from unfreeze.metrics.decide import compare_family
from unfreeze.report.racing_note import stop_note

log = logging.getLogger(__name__)


def racing_step(y_true, preds: dict[str, dict], metric, alpha: float, min_seeds: int = 3, n_boot: int = 2000,
                seed: int = 0) -> tuple[str, dict[str, dict]]:
    """(leader, {arm: comparison}) for one look: the arm with the best mean score over seeds is the leader; every
    other arm is compared with it by the report's comparison family (`metrics.decide.compare_family`: paired by
    seed where the arms share seed numbers, intervals simultaneous over every pair of arms, so picking the leader
    on these same predictions is covered), and `stop` is True where the arm is significantly behind. Racing
    spends seeds rather than printing a claim, so it refers the statistic to Satterthwaite df over the seed and
    test-set terms (the report's marks use the seeds' df, which with 3–4 seeds would never stop an arm: an arm 8
    points worse was stopped in < 70 % of simulated studies); its false stops are measured in tests/test_racing.py.
    Pure; `preds[arm]` maps run key → labels."""
    scored, _ = score_split(y_true, {arm: runs for arm, runs in preds.items() if runs}, metric, n_boot, seed)
    leader = max(scored, key=lambda arm: float(scored[arm].scores.mean()))
    rows, _ = compare_family(scored, leader, alpha, min_seeds, n_boot, df_rule="satterthwaite")
    for row in rows.values():
        row["stop"] = bool(row["worse"])
    return leader, rows


class RacingPlanner:
    """Seed by seed (all running arms' seed i before any seed i + 1), stopping arms between seeds (a planner: see
    study/planner.py). Resumable: finished runs are skipped, and the decisions are recomputed from them in the same
    order. `reporter.total` drops by the runs a stop leaves out; every look rewrites `racing.json`."""

    def __init__(self, study, jobs: list, study_dir: Path, reporter, echo):
        cfg = study.racing
        self.study, self.jobs, self.study_dir, self.reporter, self.echo = study, jobs, study_dir, reporter, echo
        self.looks = max(len(study.seeds) - cfg.min_seeds, 0)
        self.alpha_look = cfg.alpha / self.looks if self.looks else 0.0
        self.state = {"split": "val", "alpha": cfg.alpha, "looks": self.looks, "alpha_per_look": self.alpha_look,
                      "min_seeds": cfg.min_seeds, "n_boot": cfg.n_boot, "stopped": {}, "runs_not_run": 0}
        self.alive = list(dict.fromkeys(job.arm for job in jobs))
        self.seed_index = -1  # the seed whose runs were handed out last
        if not self.looks:
            echo(f"racing: {len(study.seeds)} seeds leave no look after the {cfg.min_seeds} seeds an arm needs "
                 f"before it can be stopped, so every run is run (racing saves runs only with more than "
                 f"{cfg.min_seeds} seeds)")

    def describe(self) -> str:
        return f"racing {len(self.alive)} arms over seeds {self.study.seeds}"

    def next_runs(self, finished: list, room: int) -> list:
        from unfreeze.training.run_dir import is_finished

        seeds = self.study.seeds
        while self.seed_index + 1 < len(seeds):
            if self.seed_index >= 0:
                self.look(self.seed_index)
            self.seed_index += 1
            seed = seeds[self.seed_index]
            todo = [j for j in self.jobs if j.seed == seed and j.arm in self.alive
                    and not is_finished(self.study_dir / "runs" / j.run_id)]
            if todo:
                return todo
        if self.seed_index < len(seeds):  # the last seed is run: the final state, once
            self.seed_index = len(seeds)
            write_json(self.study_dir / "racing.json", self.state)
        return []

    def look(self, i: int) -> None:
        """After seed i: stop the arms the comparison calls worse than the leader (none before `min_seeds`)."""
        from unfreeze.training.run_dir import is_finished

        cfg, seeds = self.study.racing, self.study.seeds
        if not self.looks or i + 1 < cfg.min_seeds or i + 1 >= len(seeds):
            return
        for arm, entry in decide(self.study_dir, self.jobs, self.alive, self.alpha_look, cfg,
                                 seeds=seeds[:i + 1]).items():
            entry.update({"alpha_per_look": self.alpha_look, "n_boot": cfg.n_boot})
            self.state["stopped"][arm] = entry
            self.alive.remove(arm)
            left = [j for j in self.jobs if j.arm == arm and j.seed in seeds[i + 1:]]
            self.state["runs_not_run"] += len(left)
            self.reporter.total -= len([j for j in left if not is_finished(self.study_dir / "runs" / j.run_id)])
            self.echo(f"racing: {arm} {stop_note(entry)}")
        write_json(self.study_dir / "racing.json", self.state)


def decide(study_dir: Path, jobs: list, alive: list[str], alpha: float, cfg, seeds: list[int]) -> dict[str, dict]:
    """{arm: stop entry} for the running arms that this look stops, from their finished runs' val predictions."""
    from unfreeze.report.significance import count_metric_of, read_test_predictions

    by_set: dict[str, dict[str, dict]] = {}  # validation-set fingerprint -> arm -> run key -> predictions
    labels, metric = {}, None
    for job in jobs:
        run_dir = study_dir / "runs" / job.run_id
        if job.arm not in alive or job.seed not in seeds or not (run_dir / "metrics.json").exists():
            continue
        task = job.config.task
        try:
            y, p = read_test_predictions(run_dir, task, split="val")
            metric = metric or count_metric_of(run_dir, task, job.config.selection_metric, split="val")
        except Exception as exc:  # noqa: BLE001 — e.g. a loss as selection metric: not a count metric
            log.warning("racing: no decision (%s); every arm keeps running", exc)
            return {}
        key = hashlib.sha1(json.dumps([v if isinstance(v, str) else list(v) for v in y]).encode()).hexdigest()
        labels[key] = y
        by_set.setdefault(key, {}).setdefault(job.arm, {})[(job.seed, job.fold)] = p
    stops = {}
    for key, preds in by_set.items():
        if len(preds) < 2:
            continue
        leader, rows = racing_step(labels[key], preds, metric, alpha, cfg.min_seeds, cfg.n_boot)
        for arm, row in rows.items():
            if row["stop"]:
                stops[arm] = {"after_seeds": row["seeds_other"], "leader": leader, "leader_seeds": row["seeds_best"],
                              "delta_val": row["delta"], "p_value": row["p_value"], "p_holm": row["p_holm"]}
    return stops
