"""``python -m bench.scaling``: how each stage's cost grows with totesys, fitted on what ``make bench`` measured.

Reads bench/results/results.json (scales 1, 100 and 250: the tasks of the real DAG, each in its
own process), fits each stage's seconds as ``fixed + per million source rows x rows`` by least
squares, and extrapolates to 100 times the largest measured scale. Prints the tables of
docs/scaling.md (tests/test_docs.py checks they are the ones there).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "results.json"
STAGES = ("ensure_warehouse_schema", "ingest", "transform", "load", "check")
FACTOR = 100  # "what breaks first at 100x today's largest scale"


@dataclass(frozen=True)
class Fit:
    fixed: float  # seconds at no rows: the processes' own cost
    per_million: float  # seconds per million source rows
    worst: float  # largest |residual| over the measured scales, seconds

    def at(self, rows: float) -> float:
        return self.fixed + self.per_million * rows / 1e6


def fit(points: list[tuple[float, float]]) -> Fit:
    """Least squares of seconds over source rows (at least two points)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    if slope < 0:  # a stage that does not grow, measured with noise: flat
        slope = 0.0
    fixed = my - slope * mx
    worst = max(abs(y - (fixed + slope * x)) for x, y in points)
    return Fit(fixed=fixed, per_million=slope * 1e6, worst=worst)


def stage_of(task_id: str) -> str:
    return task_id.split(".", 1)[0]


def stage_seconds(entry: dict, run: str) -> dict[str, float]:
    """Seconds of each stage's tasks added up (process per task: what the workers spend)."""
    out = dict.fromkeys(STAGES, 0.0)
    for task_id, figures in entry[run]["tasks"].items():
        out[stage_of(task_id)] += figures["seconds"]
    return out


def tables(results: list[dict]) -> str:
    results = sorted(results, key=lambda e: e["source_rows"])
    largest = results[-1]
    target_rows = largest["source_rows"] * FACTOR
    lines = [
        f"Fitted on scales {', '.join(f'{e["scale"]:g}' for e in results)} "
        f"({', '.join(f'{e["source_rows"]:,}' for e in results)} source rows); extrapolated to "
        f"{FACTOR}x scale {largest['scale']:g} ({target_rows:,} source rows).",
        "",
        "| run | stage | fixed s | s per million rows | worst residual s | at the largest measured scale s | extrapolated s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in ("initial", "incremental"):
        for stage in STAGES:
            f = fit([(e["source_rows"], stage_seconds(e, run)[stage]) for e in results])
            lines.append(
                f"| {run} | {stage} | {f.fixed:.1f} | {f.per_million:.2f} | {f.worst:.1f} | "
                f"{stage_seconds(largest, run)[stage]:.1f} | {f.at(target_rows):,.0f} |"
            )
    lines += [
        "",
        "| task (initial run) | s at the largest measured scale | s per million rows | extrapolated s | peak RSS MB at each scale |",
        "|---|---|---|---|---|",
    ]
    slowest = sorted(largest["initial"]["tasks"].items(), key=lambda kv: -kv[1]["seconds"])[:5]
    for task_id, figures in slowest:
        f = fit([(e["source_rows"], e["initial"]["tasks"][task_id]["seconds"]) for e in results])
        rss = " / ".join(f"{e['initial']['tasks'][task_id]['peak_rss_mb']:.0f}" for e in results)
        lines.append(f"| {task_id} | {figures['seconds']:.1f} | {f.per_million:.2f} | {f.at(target_rows):,.0f} | {rss} |")
    hourly = fit([(e["source_rows"], e["reconcile"]["on_the_hour"]) for e in results])
    every = fit([(e["source_rows"], e["reconcile"]["every_run"]) for e in results])
    lines += [
        "",
        "| check.reconcile's queries | s at the largest measured scale | s per million rows | extrapolated s |",
        "|---|---|---|---|",
        f"| every run | {largest['reconcile']['every_run']:.2f} | {every.per_million:.4f} | {every.at(target_rows):,.1f} |",
        f"| on the hour (whole tables, id by id) | {largest['reconcile']['on_the_hour']:.2f} | {hourly.per_million:.2f} | "
        f"{hourly.at(target_rows):,.0f} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(tables(json.loads(RESULTS.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
