"""The report's "Plan" section for a one-line study (`plan.json`, written by `unfreeze study --data … --budget …`):
the budget, what the plan trains, what was traded away and why, the estimate vs the actual time per part, and —
when the plan was cut so far that it cannot tell whether fine-tuning pays — a verdict that says so instead of
stating "fine-tuning did not beat TF-IDF" as a finding, with the budget that would answer the question.

A study without `plan.json` (written by hand) is left as it is. `with_plan` is the one hook `report.build` calls.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from unfreeze.io import read_json

OVER = 1.2  # an actual time this far over its estimate is called out
#: (row, planned parts it sums, actual measure) — what a run folder records, matched to the planned parts.
ROWS = (("cache fill + per-run setup", ("cache_fill", "fixed"), "setup"),
        ("training + validation every epoch", ("train", "validation"), "train"),
        ("final pass (test)", ("final",), "final"),
        ("baseline", ("baseline",), "baseline"),
        ("loading + report", ("study",), None))
_VERDICT = re.compile(r"^Verdict: fine-tuning did not beat (?P<name>.+?) here \((?P<numbers>.*)\)\. (?P<rest>.*)$")


def load_plan(study_dir: Path) -> dict | None:
    path = Path(study_dir) / "plan.json"
    try:
        return read_json(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def actual_parts(study_dir: Path, results: pd.DataFrame) -> dict[str, float | None]:
    """Measured seconds per row measure: runs' training loop, final pass and the rest of each run (loading, cache
    fill, saving), and the baseline rows; None where nothing has been measured yet."""
    out: dict[str, float | None] = {"setup": None, "train": None, "final": None, "baseline": None}
    if len(results) and {"train_seconds", "run_seconds"} <= set(results):
        final = results.get("final_eval_seconds", pd.Series(0.0, index=results.index)).fillna(0.0)
        # train_seconds runs from the start of the run: its setup (load, encode, cache fill) is the setup row's
        setup = results.get("setup_seconds", pd.Series(0.0, index=results.index)).fillna(0.0)
        train = results["train_seconds"].fillna(0.0)
        out["train"], out["final"] = float((train - setup).clip(lower=0).sum()), float(final.sum())
        out["setup"] = float((results["run_seconds"].fillna(train + final) - train - final).clip(lower=0).sum()
                             + setup.sum())
    paths = sorted((Path(study_dir) / "baseline").glob("*/metrics.json"))
    if paths:
        out["baseline"] = sum(float(read_json(p).get("train_seconds") or 0.0) for p in paths)
    return out


def comparison(plan: dict, actual: dict) -> tuple[list[list[str]], float, float]:
    """Table rows (part, estimated min, actual min, actual / estimated) and the estimated / actual totals over the
    rows that have been measured."""
    rows, estimated, measured = [], 0.0, 0.0
    for name, keys, measure in ROWS:
        planned = sum(plan["parts"].get(k, 0.0) for k in keys)
        value = actual.get(measure) if measure else None
        ratio = f"{value / planned:.2f}×" if value is not None and planned > 0 else "–"
        rows.append([name, f"{planned / 60:.1f}", "–" if value is None else f"{value / 60:.1f}", ratio])
        if value is not None:
            estimated, measured = estimated + planned, measured + value
    total = sum(plan["parts"].values())
    rows.append(["total", f"{total / 60:.1f}", f"{measured / 60:.1f} (measured parts)" if measured else "–",
                 f"{measured / estimated:.2f}×" if estimated and measured else "–"])
    return rows, estimated, measured


def runs_so_far(plan: dict, results: pd.DataFrame) -> tuple[int, int, float, float] | None:
    """(finished runs, planned runs, their training + final-pass seconds, the seconds the plan gave them): a study
    part-way through compared like with like (the part totals are for every planned run). A run's planned seconds
    are its arm's (`plan["arms"]`; the mean run where the name differs) less the per-run fixed share."""
    arms, parts = plan.get("arms") or [], plan.get("parts", {})
    needed = {"arm", "train_seconds", "final_eval_seconds"}
    if not arms or not len(results) or not needed <= set(results):
        return None
    done = results[results["train_seconds"].notna()]
    total = sum(int(runs) for _, runs, _ in arms)
    measured = sum(parts.get(k, 0.0) for k in ("train", "validation", "final"))
    share = measured / (measured + parts.get("fixed", 0.0)) if measured else 1.0
    per_run = {arm: seconds * share for arm, _, seconds in arms}
    mean = sum(runs * seconds for _, runs, seconds in arms) * share / max(total, 1)
    planned = float(sum(per_run.get(arm, mean) for arm in done["arm"]))
    actual = float((done["train_seconds"] + done["final_eval_seconds"].fillna(0.0)).sum())
    return len(done), total, actual, planned


def plan_blocks(study_dir: Path, plan: dict, results: pd.DataFrame) -> list:
    budget, total = plan["budget_seconds"], sum(plan["parts"].values())
    blocks: list = [("h2", "Plan"),
                    ("p", f"A one-line study planned to fit a budget of {budget / 60:.1f} min: {plan['tried']}, "
                          f"baseline {plan['baseline']}; estimated {total / 60:.1f} min, of which evaluation "
                          f"{plan.get('eval_seconds', 0.0) / 60:.1f} min (the test set alone "
                          f"{plan.get('test_seconds', 0.0) / 60:.1f} min, evaluated in full).")]
    if plan["traded"]:
        blocks.append(("p", "Traded away to fit the budget (each with what it saved): " + "; ".join(plan["traded"])
                       + "."))
    else:
        blocks.append(("p", "Nothing was traded away: this is the study the planner would run with unlimited time."))
    for note in plan.get("notes", []):
        blocks.append(("p", f"Note: {note}."))
    if plan.get("weak"):
        blocks.append(("p", f"This plan cannot tell whether fine-tuning pays on this data ({'; '.join(plan['weak'])})."
                            f" A budget of about {plan['proper_budget']} would train {plan['proper']}."))
    rows, estimated, measured = comparison(plan, actual_parts(study_dir, results))
    blocks.append(("table", ["part", "estimated min", "actual min", "actual / estimated"], rows))
    if estimated and measured > OVER * estimated:
        blocks.append(("p", f"The measured parts took {measured / 60:.1f} min, {100 * (measured / estimated - 1):.0f} "
                            f"% over their estimate of {estimated / 60:.1f} min (other jobs on the machine, or an "
                            "estimate that does not fit this data: see docs/config.md, Cost estimates)."))
    so_far = runs_so_far(plan, results)
    if so_far and so_far[0] < so_far[1] and so_far[3] and so_far[2] > OVER * so_far[3]:
        done, total, actual, planned = so_far
        blocks.append(("p", f"Running over its plan: the {done} of {total} runs finished so far took "
                            f"{actual / 60:.1f} min to train and evaluate, {100 * (actual / planned - 1):.0f} % over "
                            f"the {planned / 60:.1f} min planned for them; the rest of the study will likely run over "
                            "too (the report is rebuilt as runs finish)."))
    blocks.append(("p", "Estimated: the planner's cost model (`study.estimate.run_parts`) with this machine's "
                        "measured throughput; actual: the runs' own timings (training loop incl. per-epoch "
                        "validation, final pass, the rest of the run) and the baseline's; loading and the report "
                        "are not timed."))
    return blocks


def verdict_with_plan(text: str, plan: dict) -> str:
    """A verdict paragraph read against the plan: not a finding when the plan was too small to train properly."""
    m = _VERDICT.match(text)
    if m and plan.get("weak"):
        return (f"Verdict: not a finding. {m['name']} scored higher on validation ({m['numbers']}), but the plan "
                f"was cut to fit the budget ({plan['tried']}: {'; '.join(plan['weak'])}; see Plan), so fine-tuning "
                f"was not trained properly here. A budget of about {plan['proper_budget']} would train "
                f"{plan['proper']}.")
    if m is None and plan.get("weak") and text.startswith("Verdict:") and "did not beat" in text:
        # worded otherwise than `report.baseline.verdict` writes today: the same reading, the sentence kept
        rest = text[len("Verdict:"):].strip().replace("fine-tuning did not beat", "The fine-tuned arms trained here "
                                                                                  "scored below")
        rest = re.sub(r"^(The fine-tuned arms trained here scored below .+?) here \(", r"\1 (", rest)
        return (f"Verdict: not a finding — the plan was cut to fit the budget ({plan['tried']}; see Plan). {rest} "
                f"A budget of about {plan['proper_budget']} would train {plan['proper']}.")
    if plan.get("weak") and text.startswith("Verdict:") and "significantly worse than" in text:
        return (f"{text} Not a finding about fine-tuning: the plan was cut to fit the budget ({plan['tried']}: "
                f"{'; '.join(plan['weak'])}; see Plan), so fine-tuning was not trained properly here. A budget of "
                f"about {plan['proper_budget']} would train {plan['proper']}.")
    if plan.get("weak") and text.startswith("Verdict:") and "validation cannot tell whether" in text:
        return (f"{text} Whatever the test set says, it is not a finding about fine-tuning: the plan was cut to fit "
                f"the budget ({plan['tried']}: {'; '.join(plan['weak'])}; see Plan). A budget of about "
                f"{plan['proper_budget']} would train {plan['proper']}.")
    if (text.startswith("Verdict:") or text.startswith("The best fine-tuned arm")) and plan.get("traded"):
        return f"{text} The plan was cut to fit the budget ({plan['tried']}; see Plan)."
    return text


def with_plan(study_dir: Path, blocks: list, results: pd.DataFrame) -> list:
    """`blocks` with the Plan section before Results and the verdict read against the plan (no plan.json: as is)."""
    plan = load_plan(study_dir)
    if plan is None:
        return blocks
    out = [(b[0], verdict_with_plan(b[1], plan)) if b[0] == "p" else b for b in blocks]
    at = next((i for i, b in enumerate(out) if b[:2] == ("h2", "Results")), len(out))
    return out[:at] + plan_blocks(study_dir, plan, results) + out[at:]
