"""Run one benchmark on an older revision and on this checkout, alternately, in one command.

    .venv/bin/python bench/ab.py --baseline 34707ab~1 -- bench/bench_windows.py --skip-live

A refactoring claims "behaviour and speed unchanged"; this is how to show it on the same
machine in the same minutes. The baseline is checked out into a temporary git worktree (its
compiled extensions built in place with this venv), each round runs the benchmark there and
here (PYTHONPATH and the working directory pointing at the tree under test, so worker
subprocesses import the same code), and every output line with a rate (`/s`) or a time per
event is paired across the two by its text without numbers: the first number of each line,
the median over the rounds, and current/baseline.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
#: a number with the unit of a rate or a time after it ("23,657 events/s", "1.36 µs", "0.59x")
FIGURE = re.compile(r"(-?\d[\d,]*(?:\.\d+)?) ?(?:[A-Za-z]+/s\b|/s\b|µs|ms\b|x\b|MiB\b|MB\b)")


def figures(output: str) -> dict[str, float]:
    """The first rate, time, size or ratio of each line that states one, keyed by the line
    with its numbers blanked (a line that repeats gets a counter)."""
    found: dict[str, float] = {}
    seen: dict[str, int] = defaultdict(int)
    for line in output.splitlines():
        m = FIGURE.search(line)
        if m is None:
            continue
        key = NUMBER.sub("#", line.strip())
        seen[key] += 1
        found[f"{key} [{seen[key]}]" if seen[key] > 1 else key] = float(m.group(1).replace(",", ""))
    return found


def run(tree: Path, bench: list[str], log: Path, script_root: Path | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if script_root is not None:
        bench = [str(script_root / bench[0]), *bench[1:]]
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, *bench], cwd=tree, env=env, stdout=out,
                              stderr=subprocess.STDOUT, check=False)
    text = log.read_text()
    if proc.returncode != 0:
        sys.exit(f"ab: {' '.join(bench)} failed in {tree} (exit {proc.returncode}), see {log}")
    return text


def build_extensions(tree: Path, revision: str) -> None:
    """The baseline's compiled extensions, built in its tree: without them it would run the
    pure-Python fallbacks (or, through the editable install, this checkout's modules)."""
    if importlib.util.find_spec("Cython") is None:
        print("ab: installing Cython to build the baseline's extensions", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "Cython>=3.0"], check=True)
    print(f"ab: building the baseline's extensions ({revision})", file=sys.stderr)
    log = tree.parent / "build.log"
    with log.open("w") as out:
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree,
                       stdout=out, stderr=subprocess.STDOUT, check=False)
    if not list(tree.glob("schemas/_avro*.so")):
        sys.exit(f"ab: the baseline's extensions did not build, see {log}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="a git revision (e.g. main~5, a tag)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating")
    ap.add_argument("--same-script", action="store_true",
                    help="run this checkout's benchmark script against both trees' code (when "
                         "the baseline's script lacks a figure; the APIs it calls must exist "
                         "in both)")
    ap.add_argument("bench", nargs=argparse.REMAINDER,
                    help="-- then the benchmark script (relative to the repository) and its args")
    args = ap.parse_args()
    bench = args.bench[1:] if args.bench[:1] == ["--"] else args.bench
    if not bench:
        ap.error("name the benchmark after --")
    work = Path(tempfile.mkdtemp(prefix="clawstream-ab-"))
    base = work / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base),
                    args.baseline], check=True)
    try:
        build_extensions(base, args.baseline)
        runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
        for r in range(args.rounds):
            for side, tree in (("baseline", base), ("current", ROOT)):
                log = work / f"{side}-{r}.log"
                print(f"ab: round {r + 1}/{args.rounds} {side}: log {log}", file=sys.stderr)
                script_root = ROOT if args.same_script else None
                runs[side].append(figures(run(tree, bench, log, script_root)))
        keys = [k for k in runs["current"][0] if all(k in f for s in runs.values() for f in s)]
        print(f"{'figure (median of ' + str(args.rounds) + ')':<70} {'baseline':>12} "
              f"{'current':>12} {'ratio':>7}")
        for key in keys:
            b = statistics.median(f[key] for f in runs["baseline"])
            c = statistics.median(f[key] for f in runs["current"])
            ratio = f"{c / b:7.2f}" if b else "      -"
            print(f"{key[:70]:<70} {b:>12,.6g} {c:>12,.6g} {ratio}")
        print(f"ab: full outputs in {work}", file=sys.stderr)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                       check=False)


if __name__ == "__main__":
    main()
