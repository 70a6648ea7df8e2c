"""The report rebuilt after every finished run, so `report.html` is readable while a study runs.

Why throttled: a rebuild re-reads every finished run's predictions, runs the seed-aware comparisons and draws the
plots — well under a second for a small study, but it grows with the number of runs while a run's length does not.
A rebuild is skipped while the time since the last one is under `ratio` × how long the last one took, so the
report never costs more than ~1 / (1 + ratio) of the study's time; the final report is always built at the end.
Both report files are written atomically (`io.write_text`), so a reader never sees a half-written page.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)
SLOW_SECONDS = 5.0


class LiveReport:
    """A progress listener: called with every run outcome, rebuilds results.csv and the report when one finished."""

    def __init__(self, study_dir: Path, jobs: list, ratio: float = 4.0, clock=time.perf_counter, build_report=None):
        self.study_dir, self.jobs, self.ratio, self.clock = Path(study_dir), jobs, ratio, clock
        #: the report flow, `report.build.build_report(study_dir, results)`: passed in by the study flow (a part
        #: never imports a flow); None builds nothing
        self.build_report = build_report
        self.last_end: float | None = None
        self.last_cost = 0.0
        self.built = 0
        self.skipped = 0
        self.seconds = 0.0  # spent rebuilding, in all

    def __call__(self, outcome) -> None:
        if outcome.skipped or not outcome.ok:
            return
        now = self.clock()
        if self.last_end is not None and now - self.last_end < self.ratio * self.last_cost:
            self.skipped += 1
            return
        try:
            self.build()
        except Exception:
            log.warning("live report could not be rebuilt (the final one is built at the end)", exc_info=True)
        self.last_end = self.clock()
        self.last_cost = self.last_end - now
        self.seconds += self.last_cost
        self.built += 1
        if self.last_cost > SLOW_SECONDS:  # a reader watching the console learns why the study paused
            log.info("live report rebuilt in %.0f s; the next rebuild waits at least %.0f s", self.last_cost,
                     self.ratio * self.last_cost)

    def build(self) -> None:
        from unfreeze.study.results import collect_results

        if self.build_report is not None:
            self.build_report(self.study_dir, collect_results(self.study_dir, self.jobs))

    def build_final(self, results, echo=print):
        """The final report (always built), announced with its expected time when rebuilding it is slow: the last
        live rebuild's, the best estimate there is (a study's report grows with its runs, not within one)."""
        if self.last_cost > SLOW_SECONDS:
            echo(f"building the report: about {self.last_cost:.0f} s (as its last rebuild)")
        return self.build_report(self.study_dir, results)
