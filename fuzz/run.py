"""Run fastseg's fuzz targets (atheris, libFuzzer) one after the other, each in its own process.

Usage::

    python fuzz/run.py --seconds 20                 # every target for 20 s (what CI runs)
    python fuzz/run.py --runs 100000 nii png        # until 100000 inputs each
    nice -n 19 python fuzz/run.py --runs 100000 --keep-corpus /tmp/grown

Each target starts from a temporary copy of its committed seeds (``fuzz/corpus/<target>``),
so the inputs libFuzzer finds interesting never land in the repository (``--keep-corpus``
keeps them elsewhere). An input that breaks the rule (``fuzz/_common.py``: an exception other
than fastseg's own errors, ``ValueError`` or ``TypeError``; for ``cli``, an exit status outside
0/1/2 or a traceback), that runs longer than ``--timeout`` seconds, or that takes more than
``--rss-limit-mb`` of memory stops its target and is saved under ``--artifacts``; the runner
goes on with the next target and exits 1 at the end. Turn each into a regression test.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = ("model_file", "nii", "nii_gz", "png", "tiff", "gif", "jpeg", "dataset_json",
           "record", "cli")
#: Seconds a target may spend starting (imports, fixtures) and stopping beyond its budget.
GRACE_S = 180


def _stat(text: str, name: str):
    m = re.search(rf"stat::{name}:\s+(\d+)", text)
    return int(m.group(1)) if m else None


def _done_runs(text: str):
    m = re.findall(r"^#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)", text, re.MULTILINE)
    return int(m[-1]) if m else None


def run_target(name: str, args, artifacts: str, work: str) -> dict:
    corpus = os.path.join(work, name)
    shutil.copytree(os.path.join(HERE, "corpus", name), corpus)
    seeds = len(os.listdir(corpus))
    prefix = os.path.join(artifacts, name + "-")
    cmd = [sys.executable, os.path.join(HERE, "targets", name + ".py"), corpus,
           f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
           f"-artifact_prefix={prefix}", "-print_final_stats=1"]
    cmd += [f"-runs={args.runs}"] if args.runs else [f"-max_total_time={args.seconds}"]
    dictionary = os.path.join(HERE, "dicts", name + ".dict")
    if os.path.isfile(dictionary):
        cmd.append(f"-dict={dictionary}")
    budget = (args.seconds if not args.runs else args.max_seconds) + GRACE_S
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", timeout=budget, cwd=work)
        text, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        text = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
        text += f"\n[fuzz/run.py: {name} did not stop within {budget} s; killed]"
        code = -9
    seconds = time.monotonic() - start
    runs = _stat(text, "number_of_executed_units") or _done_runs(text)
    found = sorted(f for f in os.listdir(artifacts) if f.startswith(name + "-"))
    if args.keep_corpus:
        dest = os.path.join(args.keep_corpus, name)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(corpus, dest)
    with open(os.path.join(artifacts, name + ".log"), "w") as f:
        f.write(text)
    return {"target": name, "ok": code == 0 and not found, "exit": code, "inputs": runs,
            "seconds": round(seconds, 1), "seeds": seeds, "corpus": len(os.listdir(corpus)),
            "findings": [os.path.join(artifacts, f) for f in found],
            "log": os.path.join(artifacts, name + ".log"),
            "tail": "" if code == 0 else text[-4000:]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", metavar="TARGET", help=f"default all: {TARGETS}")
    p.add_argument("--seconds", type=int, default=20, help="seconds per target (default 20)")
    p.add_argument("--runs", type=int, help="inputs per target instead of a time budget")
    p.add_argument("--max-seconds", type=int, default=3600,
                   help="with --runs: give up on a target after this long (default 3600)")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    p.add_argument("--rss-limit-mb", type=int, default=3072)
    p.add_argument("--artifacts", help="where failing inputs and logs go (default: a new "
                   "temporary folder, printed)")
    p.add_argument("--keep-corpus", metavar="DIR", help="copy each grown corpus to DIR/<target>")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        p.error(f"unknown targets {unknown}; choose from {TARGETS}")
    artifacts = args.artifacts or tempfile.mkdtemp(prefix="fastseg-fuzz-artifacts-")
    os.makedirs(artifacts, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="fastseg-fuzz-corpus-") as work:
        for name in args.targets or TARGETS:
            r = run_target(name, args, artifacts, work)
            results.append(r)
            state = "ok" if r["ok"] else f"FAILED (exit {r['exit']})"
            print(f"{name:13s} {r['inputs'] or 0:9d} inputs {r['seconds']:7.1f} s  corpus "
                  f"{r['seeds']} -> {r['corpus']}  {state}", flush=True)
            for f in r["findings"]:
                print(f"    finding: {f}")
            if not r["ok"]:
                print("    " + r["tail"].replace("\n", "\n    ")[-3000:])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(f"logs and findings: {artifacts}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
