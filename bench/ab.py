"""A/B: the benchmarks of an old commit against those of the working tree, same run, interleaved.

Issue #10: "No regression, measured old commit vs new commit in the same run (A/B, interleaved):
bench_ingest_http, bench_delivery, bench_validate_vs_awscli, bench_lookup_api each within 5 %."

The old commit is checked out as a detached git worktree in a temporary directory (removed at
the end); the new tree is the working tree this file lives in, uncommitted changes included,
or another directory or commit given with --new. Each benchmark module of a tree runs as a
child of this venv's interpreter with PYTHONPATH=<tree>/src:<tree> and cwd=<tree>, so it
imports that tree's package, bench code and test helpers (checked before anything is timed,
and again inside every child). Rounds alternate the order, ABBA: old then new in odd rounds,
new then old in even ones. Each benchmark's headline figure is compared median against median;
a change worse than 5 % fails the run (exit 1; a run that failed or printed no figure: exit 2).

The validator is compared on the same bytes: the trail is built once by the old tree's
`build()` and each tree gets its own copy of it (the new tree migrates its copy's data
directory on first open, before anything is timed).

Each run's output is kept under bench/out/ab-<timestamp>/, the result in bench/out/ab-<timestamp>.json.
Usage: python -m bench.ab --old b180352 [--new WORKTREE_OR_COMMIT] [--rounds 3]
       [--only bench_lookup_api ...] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench._ab_trees import (
    ROOT,
    AbError,
    Tree,
    build_trail_argv,
    check_imports,
    child_env,
    close_tree,
    compile_tree,
    dependency_diff,
    interpreter_note,
    open_tree,
    run_main_argv,
    same_filesystem,
    state,
)

TOLERANCE = 0.05
RUN_TIMEOUT_S = 900
OUT = ROOT / "bench" / "out"
VALIDATE = "bench_validate_vs_awscli"
VALIDATE_TRAIL = (26, 12_000)  # periods x records per period: 345 MB of logs, the issue #3 trail
VALIDATE_TRAIL_SMOKE = (3, 1_200)

console = Console(highlight=False, width=None if sys.stdout.isatty() else 180)


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    headline: bool = False  # decides the verdict; the others are shown for context


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]
    smoke_args: tuple[str, ...]
    figures: tuple[Figure, ...]
    parse: Callable[[str], dict[str, float]]
    nominal_s: int  # wall time of one run with `args`, for the duration estimate

    @property
    def module(self) -> str:
        return f"bench.{self.name}"


def _last_json(stdout: str) -> dict[str, Any]:
    """The benches that print JSON print it last, indented, starting with a lone '{' line."""
    start = stdout.rfind("\n{") + 1
    if start == 0 and not stdout.startswith("{"):
        raise ValueError("no JSON result in the output")
    result: dict[str, Any] = json.loads(stdout[start:])
    return result


def _json_figures(*checks: tuple[str, object]) -> Callable[[str], dict[str, float]]:
    def parse(stdout: str) -> dict[str, float]:
        result = _last_json(stdout)
        for key, expected in checks:
            if result.get(key) != expected:
                raise ValueError(f"{key} is {result.get(key)!r}, expected {expected!r}")
        return {key: float(value) for key, value in result.items() if isinstance(value, int | float)}
    return parse


_VALIDATE_LINE = re.compile(r"^(aws|plain|full|stored)\s+best\s+([\d.]+) s\s+([\d.]+) MB/s", re.MULTILINE)


def _validate_figures(stdout: str) -> dict[str, float]:
    figures = {f"{name}_mb_s": float(rate) for name, _, rate in _VALIDATE_LINE.findall(stdout)}
    if len(figures) != 4:
        raise ValueError("expected the four 'best' lines (aws, plain, full, stored)")
    return figures


BENCHES = (
    Bench("bench_ingest_http", ("--seconds", "40"), ("--seconds", "6"), (
        Figure("events_per_s", "ingest throughput, 8 clients unthrottled", "events/s", True, headline=True),
        Figure("ack_ms_p99", "acknowledgement p99", "ms", False),
        Figure("rss_mb_max", "server + indexer RSS max", "MB", False),
        Figure("lookup_visible_s_max", "ack → searchable max", "s", False),
    ), _json_figures(("server_exit", 0)), nominal_s=47),
    Bench("bench_delivery", ("--seconds", "30", "--rate", "5000", "--flush", "1"),
          ("--seconds", "5", "--rate", "2000", "--flush", "1"), (
        Figure("p99_s", "ack → delivered p99 (5,000 ev/s, flush 1 s)", "s", False, headline=True),
        Figure("p50_s", "ack → delivered p50", "s", False),
    ), _json_figures(("undelivered", 0)), nominal_s=34),
    Bench("bench_validate_vs_awscli", ("--repeat", "5"), ("--repeat", "1"), (
        Figure("full_mb_s", "validate --mode full, best of run", "MB/s", True, headline=True),
        Figure("stored_mb_s", "validate --mode stored, best", "MB/s", True),
        Figure("aws_mb_s", "AWS CLI via our gateway, best", "MB/s", True),
        Figure("plain_mb_s", "AWS CLI via SeaweedFS (control)", "MB/s", True),
    ), _validate_figures, nominal_s=35),
    Bench("bench_lookup_api", ("--seconds", "20", "--client", "raw", "--clients", "4"),
          ("--seconds", "3", "--client", "raw", "--clients", "4", "--events", "2000"), (
        Figure("requests_per_s", "LookupEvents, 4 raw clients", "req/s", True, headline=True),
        Figure("p99_ms", "LookupEvents p99", "ms", False),
    ), _json_figures(), nominal_s=30),
)
BY_NAME = {bench.name: bench for bench in BENCHES}


@dataclass
class Run:
    bench: str
    round: int
    tree: str
    seconds: float
    log: str
    tree_state: str  # see _ab_trees.state
    figures: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def run_bench(bench: Bench, tree: Tree, args: list[str], round_: int, logs: Path) -> Run:
    log = logs / f"{bench.name}-r{round_}-{tree.label}.log"
    tree_state = state(tree)
    started = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(run_main_argv(bench.module, args), cwd=tree.path, env=child_env(tree),
                                stdout=subprocess.PIPE, stderr=sink, stdin=subprocess.DEVNULL, text=True,
                                start_new_session=True)
        timed_out = False
        try:
            stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the bench and the servers it started
            stdout, _ = proc.communicate()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        sink.write(stdout)
    run = Run(bench.name, round_, tree.label, round(time.perf_counter() - started, 1), str(log), tree_state)
    if timed_out:
        run.error = f"killed after {RUN_TIMEOUT_S} s"
    elif proc.returncode != 0:
        run.error = f"exited {proc.returncode}: {_tail(log)}"
    if run.error:
        return run
    try:
        run.figures = bench.parse(stdout)
    except (ValueError, KeyError) as e:
        run.error = f"unreadable result: {e}"
    return run


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def bench_args(bench: Bench, tree: Tree, smoke: bool, trails: dict[str, Path]) -> list[str]:
    args = list(bench.smoke_args if smoke else bench.args)
    if bench.name == VALIDATE:
        args += ["--out", str(trails[tree.label])]
    return args


def prepare_validate_trail(old: Tree, scratch: Path, smoke: bool, logs: Path) -> dict[str, Path]:
    """Build the validator's trail once with the old tree's code; one copy per tree."""
    periods, events = VALIDATE_TRAIL_SMOKE if smoke else VALIDATE_TRAIL
    built = scratch / "validate-trail-old"
    console.print(f"building the validator's trail with the old tree: {periods} periods x {events:,} records")
    started = time.perf_counter()
    with (logs / "validate-trail-build.log").open("w") as sink:
        proc = subprocess.run(build_trail_argv(f"bench.{VALIDATE}", built, periods, events),
                              cwd=old.path, env=child_env(old), stdout=sink, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AbError(f"building the validator's trail failed; see {logs / 'validate-trail-build.log'}")
    copy = scratch / "validate-trail-new"
    shutil.copytree(built, copy, symlinks=True)
    console.print(f"  built and copied in {time.perf_counter() - started:.0f} s")
    return {"old": built, "new": copy}


def order(round_: int, old: Tree, new: Tree) -> tuple[Tree, Tree]:
    """ABBA: old first in odd rounds, new first in even ones."""
    return (old, new) if round_ % 2 == 1 else (new, old)


def _change(figure: Figure, old: float, new: float) -> tuple[float, str]:
    change = (new - old) / old
    gain = change if figure.higher_is_better else -change
    verdict = "WORSE" if gain < -TOLERANCE else "better" if gain > TOLERANCE else "within 5 %"
    return change, verdict


def summarise(bench: Bench, runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for figure in bench.figures:
        values = {label: [r.figures[figure.key] for r in runs if r.tree == label and figure.key in r.figures]
                  for label in ("old", "new")}
        row: dict[str, Any] = {"bench": bench.name, "figure": figure.key, "label": figure.label,
                               "unit": figure.unit, "higher_is_better": figure.higher_is_better,
                               "headline": figure.headline, "old": values["old"], "new": values["new"],
                               "old_median": None, "new_median": None, "change": None, "verdict": "no figure"}
        if values["old"] and values["new"]:
            row["old_median"] = statistics.median(values["old"])
            row["new_median"] = statistics.median(values["new"])
            if row["old_median"]:
                row["change"], row["verdict"] = _change(figure, row["old_median"], row["new_median"])
        rows.append(row)
    return rows


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def render(rows: list[dict[str, Any]], runs: list[Run]) -> Table:
    table = Table(title="A/B: old commit vs new tree (medians; per-round values in run order)")
    for name in ("bench", "figure", "unit", "old median", "new median", "change", "verdict", "old rounds",
                 "new rounds"):
        table.add_column(name, justify="right" if name in ("old median", "new median", "change") else "left")
    colour = {"WORSE": "bold red", "better": "green", "within 5 %": "", "no figure": "bold red"}
    for row in rows:
        style = colour[row["verdict"]] if row["headline"] else "dim"
        change = "—" if row["change"] is None else f"{row['change']:+.1%}"
        verdict = row["verdict"] + ("" if row["headline"] else " (info)")
        table.add_row(row["bench"] if row["headline"] else "", row["label"], row["unit"], _num(row["old_median"]),
                      _num(row["new_median"]), change, f"[{style}]{verdict}[/]" if style else verdict,
                      " ".join(_num(v) for v in row["old"]), " ".join(_num(v) for v in row["new"]),
                      style="bold" if row["headline"] else None)
    for run in runs:
        if run.error:
            table.add_row(run.bench, f"[bold red]round {run.round} {run.tree}: {run.error[:100]}[/]", "", "", "", "",
                          "[bold red]ERROR[/]", "", "")
    return table


def estimate_s(benches: list[Bench], rounds: int) -> int:
    build = 120 if any(b.name == VALIDATE for b in benches) else 0
    return 2 * rounds * sum(b.nominal_s for b in benches) + build + 30


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="commit of the old side, e.g. b180352")
    ap.add_argument("--new", default=str(ROOT), help="directory (used as it is) or commit; default: this tree")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], metavar="NAME",
                    help=f"run only these of: {', '.join(b.name for b in BENCHES)}")
    ap.add_argument("--smoke", action="store_true", help="a few seconds per run, to test the harness itself")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def preflight(old: Tree, new: Tree, benches: list[Bench], scratch: Path) -> dict[str, Any]:
    diff = dependency_diff(old, new)
    if diff:
        console.print(f"[bold red]dependency files differ between {old.ref} and the new tree; both run "
                      f"with this venv's packages:[/]\n{diff}")
    else:
        console.print(f"dependencies: pyproject.toml, uv.lock, requirements* identical in {old.ref} and the new tree")
    if not same_filesystem(scratch, new.path):
        console.print("[bold red]the old worktree is not on the new tree's file system; fsync-bound figures "
                      "are not comparable[/]")
    modules = [b.module for b in benches]
    if any(b.name == VALIDATE for b in benches):
        modules += ["tests.e2e.harness", "tests.pipeline", "tests.seaweed"]
    imports = {}
    for tree in (old, new):
        imports[tree.label] = check_imports(tree, modules)
        compile_tree(tree)
        console.print(f"{tree.label}: {tree.commit[:10]}{' + uncommitted changes' if tree.dirty else ''} "
                      f"at {tree.path}; trailkeeper from {imports[tree.label]['trailkeeper']}")
    return {"dependency_diff": diff, "imports": imports}


def run_rounds(benches: list[Bench], old: Tree, new: Tree, args: argparse.Namespace, trails: dict[str, Path],
               logs: Path) -> list[Run]:
    runs: list[Run] = []
    for round_ in range(1, args.rounds + 1):
        for bench in benches:
            headline = next(f for f in bench.figures if f.headline)
            for tree in order(round_, old, new):
                run = run_bench(bench, tree, bench_args(bench, tree, args.smoke, trails), round_, logs)
                runs.append(run)
                shown = run.error[:120] if run.error else \
                    f"{headline.key} = {_num(run.figures.get(headline.key))} {headline.unit}"
                console.print(f"  round {round_}/{args.rounds}  {bench.name:<26} {tree.label}  {run.seconds:6.1f} s  {shown}")
    return runs


def conclude(benches: list[Bench], runs: list[Run], result: dict[str, Any], path: Path) -> int:
    """Print the table, write the JSON; exit status 0 pass, 1 a headline WORSE, 2 no valid comparison."""
    rows = [row for bench in benches for row in summarise(bench, [r for r in runs if r.bench == bench.name])]
    console.print(render(rows, runs))
    worse = any(r["headline"] and r["verdict"] == "WORSE" for r in rows)
    failed = any(r.error for r in runs) or any(r["headline"] and r["verdict"] == "no figure" for r in rows)
    changed = [label for label in ("old", "new") if len({r.tree_state for r in runs if r.tree == label}) > 1]
    if changed:
        console.print(f"[bold red]the {' and '.join(changed)} tree changed during the run (edited by someone?): "
                      "its runs did not all run the same code; see tree_state per run in the JSON[/]")
    failed = failed or bool(changed)
    outcome = "error" if failed else "WORSE" if worse else "pass"
    result |= {"finished": datetime.now(UTC).isoformat(), "changed_during_run": changed, "figures": rows,
               "runs": [vars(r) for r in runs], "outcome": outcome}
    path.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"outcome: {outcome}; written {path}")
    return 2 if failed else 1 if worse else 0


def main() -> int:
    args = parse_args()
    benches = [b for b in BENCHES if not args.only or b.name in args.only]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    logs = OUT / f"ab-{stamp}"
    logs.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="trailkeeper-ab-"))
    result: dict[str, Any] = {"issue": 10, "tolerance": TOLERANCE, "started": datetime.now(UTC).isoformat(),
                              "rounds": args.rounds, "smoke": args.smoke, "interpreter": interpreter_note(),
                              "settings": {b.name: list(b.smoke_args if args.smoke else b.args) for b in benches},
                              "validate_trail": list(VALIDATE_TRAIL_SMOKE if args.smoke else VALIDATE_TRAIL)}
    opened: list[Tree] = []
    try:
        for label, ref in (("old", args.old), ("new", args.new)):
            opened.append(open_tree(label, ref, scratch))
        old, new = opened
        result |= {"old": old.to_dict(), "new": new.to_dict(), **preflight(old, new, benches, scratch)}
        duration = "a few minutes (smoke)" if args.smoke else f"about {estimate_s(benches, args.rounds) / 60:.0f} min"
        console.print(f"interpreter {interpreter_note()}; {len(benches)} benches x 2 trees x {args.rounds} rounds: "
                      f"{duration}; logs in {logs}")
        trails = prepare_validate_trail(old, scratch, args.smoke, logs) if VALIDATE in {b.name for b in benches} else {}
        runs = run_rounds(benches, old, new, args, trails, logs)
    except AbError as e:
        console.print(f"[bold red]ab: {e}[/]")
        return 2
    finally:
        for tree in reversed(opened):
            close_tree(tree)
        shutil.rmtree(scratch, ignore_errors=True)
    return conclude(benches, runs, result, OUT / f"ab-{stamp}.json")


if __name__ == "__main__":
    sys.exit(main())
