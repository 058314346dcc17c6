"""Killed processes: ``fastseg segment`` of many files and ``fastseg train`` killed with
SIGKILL at random moments (and while a file is half written), then run again with
``--skip-existing`` / ``--resume``, end with exactly the files of an uninterrupted run, byte
for byte, and no temporary left behind. (A Dask worker killed mid-file:
tests/test_distributed.py, test_a_killed_worker_loses_nothing.)

The outputs are compared byte for byte; the report's own files (a record per input, the run
card, report.html), which hold the run's timings, are compared without them: every input's
record must say "done" with its numbers, as after an uninterrupted run.

The moments are drawn from a seeded generator (``FASTSEG_KILL_SEED``, default 0) and printed,
so a failure can be replayed.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import fastseg
from fastseg.segmenter import Segmenter

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

SEED = int(os.environ.get("FASTSEG_KILL_SEED", "0"))
#: Seconds any one run of the command line may take here (a few on a busy machine).
RUN_TIMEOUT_S = 120
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "FASTSEG_BACKEND": "c"}


def fastseg_cmd(*args):
    return [sys.executable, "-m", "fastseg", *map(str, args), "--threads", "1"]


def run(*args):
    """Run the command line to completion; returns seconds taken."""
    start = time.monotonic()
    done = subprocess.run(fastseg_cmd(*args), env=ENV, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return time.monotonic() - start


def kill_when(args, ready, delay, what):
    """Start the command line, wait until ``ready()`` (polled every millisecond), then
    `delay` seconds, then SIGKILL it. Returns whether it was still running when killed."""
    proc = subprocess.Popen(fastseg_cmd(*args), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.001)
        if delay:
            time.sleep(delay)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=RUN_TIMEOUT_S)
    print(f"killed {what}: {'mid-run' if alive else 'after it had finished'}")
    return alive


def temporaries(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


#: What a run's own files say about when and how long: they differ from run to run.
TIMES = {"seconds", "created", "worker"}


def _without_times(value):
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def assert_same_folder(got, want):
    """The same files; each byte for byte, but for the timings of the report's own files
    (records, run card: compared without them) and report.html (checked whole: it shows
    those timings)."""
    names = sorted(os.listdir(want))
    assert sorted(os.listdir(got)) == names
    for name in names:
        a, b = (got / name).read_bytes(), (want / name).read_bytes()
        if name.endswith(".json"):
            assert _without_times(json.loads(a)) == _without_times(json.loads(b)), name
        elif name.endswith(".html"):
            assert a.rstrip().endswith(b"</html>"), name
        else:
            assert a == b, f"{name} differs from the uninterrupted run's"


# ---- fastseg segment ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def segment_job(tmp_path_factory):
    """A small random segmenter and twelve small images (png and tif), saved once."""
    root = tmp_path_factory.mktemp("segment-job")
    fastseg.seed(3)
    seg = Segmenter(patch_size=12, model_kwargs={"hidden": 8}, prior_correction=False)
    seg.model_ = seg._build().eval()
    seg.save(root / "model.fseg")
    rng = np.random.default_rng(0)
    (root / "in").mkdir()
    for i in range(12):
        pixels = rng.integers(0, 256, (64, 56 + 3 * i, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "in" / f"img{i}.{'png' if i % 3 else 'tif'}")
    want = root / "want"
    seconds = run("segment", root / "model.fseg", root / "in", "--out", want)
    return root, want, seconds


def outputs(folder):
    return [n for n in os.listdir(folder) if n.endswith(".png")] if folder.is_dir() else []


def test_segment_killed_at_random_then_skip_existing(segment_job, tmp_path):
    root, want, _ = segment_job
    rng = random.Random(SEED)
    out = tmp_path / "out"
    args = ("segment", root / "model.fseg", root / "in", "--out", out)
    total = len(os.listdir(want))
    # 1: at a random moment of the work (a random count of outputs written, then up to a
    # tenth of a second); 2: a rerun with --skip-existing killed the moment a file is half
    # written (its temporary exists); 3: a rerun killed at random again; 4: to the end.
    first = rng.randint(1, total // 3)
    print(f"seed {SEED}: first kill after {first} of {total} outputs")
    alive = [kill_when(args, lambda: len(outputs(out)) >= first, rng.uniform(0, 0.1),
                       "at random")]
    assert 0 < len(outputs(out)) < total
    alive.append(kill_when((*args, "--skip-existing"), lambda: temporaries(out), 0,
                           "mid-write"))
    left = temporaries(out)
    print(f"temporaries the kills left: {left}")
    third = rng.randint(len(outputs(out)), total - 1)
    alive.append(kill_when((*args, "--skip-existing"), lambda: len(outputs(out)) >= third,
                           rng.uniform(0, 0.1), "at random"))
    assert alive[0], "the first kill came after the run had finished"
    run(*args, "--skip-existing")
    assert temporaries(out) == []
    assert_same_folder(out, want)


# ---- fastseg train --resume ---------------------------------------------------------------


@pytest.fixture(scope="module")
def train_job(tmp_path_factory):
    """Three small photos with masks in a folder, and an uninterrupted `fastseg train`."""
    root = tmp_path_factory.mktemp("train-job")
    rng = np.random.default_rng(1)
    for sub in ("images", "masks"):
        (root / "data" / sub).mkdir(parents=True)
    for i in range(3):
        image = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
        mask = np.zeros((40, 44), np.uint8)
        mask[10 + i:20 + i, 5:35] = 255
        Image.fromarray(image).save(root / "data" / "images" / f"p{i}.png")
        Image.fromarray(mask).save(root / "data" / "masks" / f"p{i}_mask.png")
    args = ("train", "--data", f"folder:{root / 'data'}", "--epochs", "12", "--batches", "4",
            "--batch-size", "16", "--hidden", "8", "--patch-size", "12")
    want = root / "want"
    seconds = run(*args, "--out", want)
    return args, want, seconds


def test_train_killed_then_resumed_ends_as_an_uninterrupted_run(train_job, tmp_path):
    args, want, _ = train_job
    rng = random.Random(SEED + 1)
    out = tmp_path / "out"
    checkpoint = out / "checkpoint.fseg"
    # 1: at random once the first checkpoint exists (--resume needs one); 2: a resumed
    # run killed the moment it is writing a checkpoint; 3: resumed to the end.
    delay = rng.uniform(0, 0.15)
    print(f"seed {SEED}: first kill {delay:.2f} s after the first checkpoint")
    alive = kill_when((*args, "--out", out), checkpoint.is_file, delay, "at random")
    assert alive and checkpoint.is_file()
    kill_when((*args, "--out", out, "--resume"),
              lambda: any(n.startswith(".checkpoint.fseg.") for n in temporaries(out)),
              0, "writing a checkpoint")
    run(*args, "--out", out, "--resume")
    assert temporaries(out) == []
    assert_same_folder(out, want)
