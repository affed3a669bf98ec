"""The mutation score of the modules where a silent bug loses data or falsifies a score.

    pip install -r requirements-dev.txt
    python tests/mutation.py            # mutmut over the modules in pyproject.toml's [tool.mutmut], then the scores
    python tests/mutation.py --report   # the scores of the last run again
    python tests/mutation.py --survivors  # after new tests: only the last run's survivors again

mutmut changes one operator, constant or condition at a time and runs the unit tests that reach the changed function
(`--unit-only`: none that needs the notebook's trained model). A mutant no test notices survives. Per module this
prints the mutants, those killed (a test failed, timed out or crashed), the survivors, the equivalent ones listed in
tests/mutation_equivalents.txt (a change that cannot alter behaviour, with its reason) and the score: killed over
the mutants that are not equivalent. It exits 1 when a module scores under MINIMUM_SCORE, listing its survivors
(`mutmut show NAME` prints one's change).
"""
import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.txt")
MINIMUM_SCORE = 0.9
DETECTED = {1, 3, 36, 24, -24, 152, 255, -11, -9, 37}  # mutmut's exit codes for killed, timeout, crash, type check
TIMEOUTS = {36, 24, -24, 152, 255}  # among them, a test stopped at its time limit: shown apart, as a hang is worth a look


def equivalent_mutants(path=None):
    """{mutant name: reason} from lines `name  reason` (a line starting with # is a comment)."""
    listed = {}
    for line in Path(path or EQUIVALENTS).read_text(encoding="utf-8").splitlines():
        line = "" if line.lstrip().startswith("#") else line.strip()
        if line:
            name, _, reason = line.partition(" ")
            listed[name] = reason.strip()
    return listed


def results(mutants_dir):
    """{module: {mutant name: exit code}} from mutmut's files of the last run."""
    by_module = {}
    for meta in sorted(Path(mutants_dir).rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            by_module[meta.relative_to(mutants_dir).as_posix()[: -len(".meta")]] = codes
    return by_module


def scores(by_module, equivalents):
    """Rows (module, mutants, not run, killed (of them timed out), survivors, equivalent, score) and {module: survivor
    names}. A survivor is a mutant that ran and no test noticed, or that no test reaches."""
    rows, survivors = [], defaultdict(list)
    for module, codes in by_module.items():
        ran = {name: code for name, code in codes.items() if code is not None}
        killed = sum(code in DETECTED for code in ran.values())
        equivalent = sum(name in equivalents and code not in DETECTED for name, code in ran.items())
        survivors[module] = sorted((name for name, code in ran.items()
                                    if code not in DETECTED and name not in equivalents), key=mutant_order)
        counted = len(ran) - equivalent
        timed_out = sum(code in TIMEOUTS for code in ran.values())
        rows.append((module, len(codes), len(codes) - len(ran), f"{killed} ({timed_out})", len(survivors[module]),
                     equivalent, killed / counted if counted else 1.0))
    return rows, survivors


def mutant_order(name):
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number) if number.isdigit() else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="the scores of the last run, without running it")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the last run's survivors, against the tests as they are now (mutmut keeps "
                             "every other result until a function changes)")
    parser.add_argument("--max-children", type=int, default=len(os.sched_getaffinity(0)),
                        help="mutants tested at once (default: one per usable CPU)")
    args = parser.parse_args(argv)
    equivalents = equivalent_mutants()
    again = []
    if args.survivors:
        again = [name for names in scores(results(ROOT / "mutants"), equivalents)[1].values() for name in names]
    if not args.report and (again or not args.survivors):
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *again],
                       cwd=ROOT, check=True)
    by_module = results(ROOT / "mutants")
    if not by_module:
        sys.exit("no mutation results in mutants/: run without --report first")
    rows, survivors = scores(by_module, equivalents)
    print(f"\n{'module':<28} {'mutants':>7} {'not run':>7} {'killed (timed out)':>18} {'survived':>8} "
          f"{'equivalent':>10} {'score':>6}")
    for module, total, not_run, killed, survived, equivalent, score in rows:
        print(f"{module:<28} {total:>7} {not_run:>7} {killed:>18} {survived:>8} {equivalent:>10} {score:>6.1%}")
    stale = sorted(set(equivalents) - {name for codes in by_module.values() for name in codes})
    if stale:
        print(f"\nlisted as equivalent but not among the mutants (the function changed? renumbered?): {', '.join(stale)}")
    failing = [row[0] for row in rows if row[-1] < MINIMUM_SCORE or row[2]]
    for module in failing:
        print(f"\n{module}: {len(survivors[module])} survivor(s) (mutmut show NAME):")
        print("\n".join(f"  {name}" for name in survivors[module]))
    if failing:
        print(f"\nunder {MINIMUM_SCORE:.0%}, or not every mutant run: {', '.join(failing)}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
