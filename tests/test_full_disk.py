"""Full disks: writing ``fastseg segment``'s outputs or a model file where the space runs out
gives a clear error naming the file, and leaves no half-written file and no temporary: each
output there is whole (the bytes a run with room writes), an older file at the same name
stays as it was.

Two ways to run out: a small tmpfs (``mount -t tmpfs -o size=...``; needs root and a
container that allows mounts, else those tests skip and say why), and, everywhere, a file
size limit (RLIMIT_FSIZE, SIGXFSZ ignored), under which a write past the limit fails with
EFBIG as a full disk fails with ENOSPC.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid

import numpy as np
import pytest
from PIL import Image

import fastseg
from fastseg import models
from fastseg.cli import main
from fastseg.segmenter import Segmenter

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="tmpfs and RLIMIT_FSIZE as Linux has them")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """A small random segmenter, six 64x64 images, and what `fastseg segment` writes for
    them with room to spare."""
    root = tmp_path_factory.mktemp("full-disk")
    fastseg.seed(4)
    seg = Segmenter(patch_size=12, model_kwargs={"hidden": 8}, prior_correction=False)
    seg.model_ = seg._build().eval()
    seg.save(root / "model.fseg")
    rng = np.random.default_rng(4)
    (root / "in").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            root / "in" / f"img{i}.png")
    want = root / "want"
    assert main(["segment", str(root / "model.fseg"), str(root / "in"), "--out", str(want),
                 "--threads", "1"]) == 0
    return root, want


def _mount_tmpfs(where, size: str) -> str | None:
    """Mount a tmpfs of `size` at `where`; None, or why it could not be."""
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs"
    if shutil.which("mount") is None:
        return "no mount command"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"this machine refuses to mount a tmpfs ({done.stderr.strip() or done.returncode})"
    return None


@pytest.fixture
def small_disk(tmp_path):
    """A 96 kB tmpfs: room for a few of the job's pictures, not for all of them."""
    disk = tmp_path / "disk"
    why = _mount_tmpfs(disk, "96k")
    if why:
        pytest.skip(why)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _check_outputs(out, want):
    """Every file in `out` is whole: a picture the bytes of `want`'s, a record or run card
    valid JSON, report.html complete; no temporary. Returns the pictures."""
    names = sorted(os.listdir(out))
    assert [n for n in names if n.endswith(".tmp") or n.startswith(".")] == []
    for name in names:
        data = (out / name).read_bytes()
        if name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".html"):
            assert data.rstrip().endswith(b"</html>")
        else:
            assert data == (want / name).read_bytes(), name
    return [n for n in names if n.endswith(".png")]


def _failure_lines(code, err, out, error):
    """A full disk ends the command in one of two ways, both clear: inputs reported failed
    one line each (exit 1), or -- when the folder's own files (a record, the report) can
    no longer be written either -- the command's one-line error (exit 2). Every line names
    a file in `out` and the error; no traceback."""
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if ": failed: " in line or ": error: " in line]
    assert code in (1, 2) and lines, (code, err)
    if code == 2:
        assert lines[-1].startswith("fastseg segment: error: ")
    for line in lines:
        assert error in line and str(out) in line, line
    return lines


def test_segment_onto_a_full_tmpfs(job, small_disk, capsys):
    root, want = job
    out = small_disk / "out"
    code = main(["segment", str(root / "model.fseg"), str(root / "in"), "--out", str(out),
                 "--threads", "1"])
    _failure_lines(code, capsys.readouterr().err, out, "[Errno 28] No space left on device: ")
    written = _check_outputs(out, want)
    assert 0 < len(written) < len([n for n in os.listdir(want) if n.endswith(".png")])
    # One input: the command's own one-line error, naming the file, exit status 2.
    code = main(["segment", str(root / "model.fseg"), str(root / "in" / "img5.png"),
                 "--out", str(out), "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("fastseg segment: error: [Errno 28] No space left on device: '")
    assert str(out) in err[0]
    _check_outputs(out, want)


def test_model_saving_onto_a_full_tmpfs(small_disk):
    path = small_disk / "model.fseg"
    small = models.lai2d(patch_size=10, conv_channels=(2,), hidden=3)
    fastseg.save(small, path)
    before = path.read_bytes()
    big = models.lai2d(patch_size=24, hidden=100)  # 0.5 MB of weights
    with pytest.raises(OSError, match=r"\[Errno 28\] No space left on device: '.*model.fseg'"):
        fastseg.save(big, path)
    assert path.read_bytes() == before and os.listdir(small_disk) == ["model.fseg"]
    seg = Segmenter(patch_size=24, model_kwargs={"hidden": 100})
    seg.model_ = big
    with pytest.raises(OSError) as err:
        seg.save(small_disk / "seg.fseg")
    assert err.value.errno == errno.ENOSPC and err.value.filename.endswith("seg.fseg")
    assert os.listdir(small_disk) == ["model.fseg"]
    assert repr(fastseg.load(path)) == repr(small)


LIMIT_FILE_SIZE = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    limit = int(sys.argv.pop(1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
""")
CLI = LIMIT_FILE_SIZE + "from fastseg.cli import main\nsys.exit(main(sys.argv[1:]))\n"
SAVE = LIMIT_FILE_SIZE + ("import fastseg\nfrom fastseg import models\n"
                          "fastseg.save(models.lai2d(), sys.argv[1])\n")


def test_a_file_size_limit_fails_writes_like_a_full_disk(job, tmp_path):
    """Where no tmpfs can be mounted, the same guarantees under RLIMIT_FSIZE: the outputs
    larger than the limit fail (EFBIG, naming the file), the others are whole."""
    root, want = job
    sizes = sorted({(want / n).stat().st_size for n in os.listdir(want) if n.endswith(".png")})
    limit = sizes[len(sizes) // 2]  # some outputs fit, some do not
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", CLI, str(limit), "segment",
                           str(root / "model.fseg"), str(root / "in"), "--out", str(out),
                           "--threads", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    _failure_lines(done.returncode, done.stderr, out, "[Errno 27] File too large: ")
    written = _check_outputs(out, want)
    assert written and all((want / n).stat().st_size <= limit for n in written)
    model = tmp_path / f"{uuid.uuid4().hex}.fseg"
    done = subprocess.run([sys.executable, "-c", SAVE, "4096", str(model)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert f"OSError: [Errno 27] File too large: '{model}'" in done.stderr
    assert os.listdir(tmp_path) == ["out"]
