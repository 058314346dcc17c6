"""fastseg.distributed on LocalClusters of worker processes: the same files and arrays as one
machine, failing files reported, resuming, a killed worker, the CLI, threads and shutdown."""
import os
import signal
import sys
import threading
import time

import numpy as np
import psutil
import pytest
from _segment_helpers import usable_backend  # noqa: F401
from distributed import Client
from PIL import Image

import fastseg
from fastseg import Segmenter, distributed, models
from fastseg.cli import main
from fastseg.distributed import _worker
from fastseg.distributed._cluster import local_cluster

PATCH = 12


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small random network as a segmenter file, its threshold the median probability of
    a noise image, so that the masks are neither empty nor full."""
    fastseg.seed(3)
    seg = Segmenter(patch_size=PATCH, model_kwargs={"hidden": 8}, prior_correction=False)
    seg.model_ = seg._build().eval()
    noise = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    seg.threshold = float(np.median(seg.predict_proba(noise)))
    path = tmp_path_factory.mktemp("model") / "model.fseg"
    seg.save(path)
    return path


def _write_images(folder, shapes, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, shape in enumerate(shapes):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        pixels[: shape[0] // 6] = 0  # a dark band, so the estimated FOV is not everything
        Image.fromarray(pixels).save(folder / f"img{i}.{'png' if i % 2 else 'tif'}")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Five small images: RGB and greyscale, png and tif, odd sizes."""
    shapes = [(40, 47, 3), (45, 38), (37, 41, 3), (50, 33), (29, 52, 3)]
    return _write_images(tmp_path_factory.mktemp("images") / "in", shapes, seed=0)


@pytest.fixture(scope="module")
def expected(images, model_file, tmp_path_factory):
    """What the sequential `fastseg segment` writes for `images`."""
    out = tmp_path_factory.mktemp("sequential")
    assert main(["segment", str(model_file), str(images[0].parent), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes, shared by the tests that do not kill them."""
    with local_cluster(2, 1) as cluster, Client(cluster) as c:
        yield c


def assert_same_files(got, want, names):
    for name in names:
        assert (got / name).read_bytes() == (want / name).read_bytes(), name


def outputs_of(paths):
    return [f"{p.stem}_{kind}.png" for p in paths for kind in ("prob", "mask", "overlay")]


def run_files(paths):
    """What the run adds beside the outputs: a record per input, the run card, the page."""
    from fastseg._files.naming import stem

    return [f"{stem(p)}_record.json" for p in paths] + ["fastseg-run.json", "report.html"]


def same_records(got, want, paths):
    """The records of two runs agree but for the time taken and who did the work."""
    from fastseg._files.naming import stem
    from fastseg.report import read_record

    for p in paths:
        a, b = (read_record(folder / f"{stem(p)}_record.json") for folder in (got, want))
        for rec in (a, b):
            rec.pop("seconds", None)
            rec.pop("worker", None)
        assert a == b, p


def no_temporaries(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")] == []


# ---- segment_many --------------------------------------------------------------------


def test_segment_many_writes_the_sequential_files_byte_for_byte(client, model_file, images,
                                                                 expected, tmp_path):
    report = distributed.segment_many(model_file, [images[0].parent], tmp_path, client=client)
    assert [r.status for r in report] == ["done"] * len(images)
    assert [r.path for r in report] == [str(p) for p in images]
    assert sorted(os.listdir(tmp_path)) == sorted(outputs_of(images) + run_files(images))
    assert_same_files(tmp_path, expected, outputs_of(images))
    same_records(tmp_path, expected, images)
    assert report.report == tmp_path / "report.html"
    assert any(0 < r.foreground < r.fov_pixels for r in report)  # masks that say something
    assert {r.worker for r in report} <= set(client.scheduler_info()["workers"])
    assert report.summary().startswith(f"{len(images)} done, 0 skipped, 0 failed")
    # The model plugin is unregistered at the end: no worker keeps the model.
    digest = _worker.ModelPayload(model_file.read_bytes()).digest
    assert set(client.run(lambda: digest in _worker._segmenters).values()) == {False}


def test_two_runs_of_one_model_at_once(client, model_file, images, expected, tmp_path):
    """Each run installs and removes its own plugin: the first to end leaves the other's
    model in place."""
    reports = {}
    runs = [threading.Thread(target=lambda k=k, part=part: reports.update(
        {k: distributed.segment_many(model_file, part, tmp_path / k, client=client)}))
        for k, part in (("a", images[:1]), ("b", images))]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [r.status for r in reports["a"]] == ["done"]
    assert [r.status for r in reports["b"]] == ["done"] * len(images)
    assert_same_files(tmp_path / "b", expected, outputs_of(images))


def test_segment_many_with_fov_folder_and_options(client, model_file, images, tmp_path):
    fovs = tmp_path / "fov"
    fovs.mkdir()
    for p in images:
        h, w = Image.open(p).size[::-1]
        Image.fromarray(np.tri(h, w, 5, dtype=np.uint8) * 255).save(fovs / f"{p.stem}_mask.png")
    seq, dist = tmp_path / "seq", tmp_path / "dist"
    args = ["--fov", str(fovs), "--threshold", "0.45", "--tile", "7"]
    assert main(["segment", str(model_file), *map(str, images), "--out", str(seq), *args]) == 0
    report = distributed.segment_many(model_file, images, dist, client=client, fovs=fovs,
                                      threshold=0.45, tile=7)
    assert not report.failed
    assert_same_files(dist, seq, outputs_of(images))


def test_failing_files_are_reported_and_the_others_finish(client, model_file, images, expected,
                                                          tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    fovs = tmp_path / "fov"
    fovs.mkdir()
    Image.fromarray(np.ones((7, 9), np.uint8) * 255).save(fovs / "img1_mask.png")  # wrong size
    for p in images:
        if p.stem != "img1":
            Image.fromarray(np.full(Image.open(p).size[::-1], 255, np.uint8)).save(
                fovs / f"{p.stem}_mask.png")
    for stem in ("corrupt", "missing"):  # they fail before their FOV is read
        Image.fromarray(np.ones((5, 5), np.uint8)).save(fovs / f"{stem}_mask.png")
    inputs = [*images, bad / "corrupt.png", bad / "missing.png", bad / "nofov.png"]
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(bad / "nofov.png")
    out = tmp_path / "out"
    report = distributed.segment_many(model_file, inputs, out, client=client, fovs=fovs)

    by_name = {r.name: r for r in report}
    assert by_name["corrupt.png"].status == "failed"
    assert "cannot read image" in by_name["corrupt.png"].error
    assert "corrupt.png" in by_name["corrupt.png"].error
    assert "no such image file" in by_name["missing.png"].error
    assert "9x7" in by_name["img1.png"].error and "img1_mask.png" in by_name["img1.png"].error
    assert "no FOV file for nofov.png" in by_name["nofov.png"].error
    assert sorted(r.name for r in report.failed) == sorted(
        ["corrupt.png", "missing.png", "nofov.png", "img1.png"])
    good = [p for p in images if p.stem != "img1"]
    assert [r.name for r in report.done] == [p.name for p in good]
    # Nothing but its record for a failed file: the page shows every input.
    assert sorted(os.listdir(out)) == sorted(outputs_of(good) + run_files(inputs))
    assert no_temporaries(out)
    assert report.summary().startswith(f"{len(good)} done, 0 skipped, 4 failed")


def test_skip_existing_resumes(client, model_file, images, expected, tmp_path):
    first = distributed.segment_many(model_file, images[:2], tmp_path, client=client)
    assert len(first.done) == 2
    stamps = {n: os.stat(tmp_path / n).st_mtime_ns for n in outputs_of(images[:2])}
    # An interrupted run: one output of the third image made it, the others did not.
    (tmp_path / f"{images[2].stem}_prob.png").write_bytes(b"stale")
    report = distributed.segment_many(model_file, images, tmp_path, client=client,
                                      skip_existing=True)
    assert [r.status for r in report] == ["skipped"] * 2 + ["done"] * (len(images) - 2)
    assert {n: os.stat(tmp_path / n).st_mtime_ns for n in stamps} == stamps  # untouched
    assert_same_files(tmp_path, expected, outputs_of(images))
    assert "2 skipped" in report.summary()


def test_segment_many_bad_arguments(client, model_file, images, tmp_path):
    """Refused before any work starts, with a message that names the problem."""
    with pytest.raises(FileNotFoundError, match="missing.fseg"):
        distributed.segment_many(tmp_path / "missing.fseg", images, tmp_path)
    with pytest.raises(TypeError, match="model: expected"):
        distributed.segment_many(object(), images, tmp_path)
    with pytest.raises(ValueError, match="no input files"):
        distributed.segment_many(model_file, [], tmp_path)
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / f"{images[0].stem}.png").write_bytes(images[0].read_bytes())
    with pytest.raises(ValueError, match="same stem"):
        distributed.segment_many(model_file, [images[0], twin / f"{images[0].stem}.png"],
                                 tmp_path)
    with pytest.raises(ValueError, match="FOV folder not found"):
        distributed.segment_many(model_file, images, tmp_path, fovs=tmp_path / "nofov")
    with pytest.raises(ValueError, match="no image or volume files"):
        distributed.segment_many(model_file, [tmp_path / "twin" / ".."], tmp_path / "o")
    with pytest.raises(ValueError, match="n_workers"):
        distributed.segment_many(model_file, images, tmp_path, client=client, n_workers=2)
    with pytest.raises(TypeError, match="client: expected"):
        distributed.segment_many(model_file, images, tmp_path, client=42)


def test_sequential_cli_skip_existing(model_file, images, expected, tmp_path, capsys):
    import shutil

    for name in outputs_of(images[:2]) + [f"{p.stem}_record.json" for p in images[:2]]:
        shutil.copy(expected / name, tmp_path / name)
    stamps = {n: os.stat(tmp_path / n).st_mtime_ns for n in outputs_of(images[:2])}
    code = main(["segment", str(model_file), *map(str, images), "--out", str(tmp_path),
                 "--skip-existing"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert lines[:2] == [f"{p.name}: skipped (its outputs exist)" for p in images[:2]]
    assert lines[-1].startswith(f"{len(images) - 2} done, 2 skipped, 0 failed")
    assert {n: os.stat(tmp_path / n).st_mtime_ns for n in stamps} == stamps
    assert_same_files(tmp_path, expected, outputs_of(images))


def test_a_killed_worker_loses_nothing(model_file, tmp_path):
    """Kill a worker process while it holds tasks: they run again elsewhere, every output is
    present and right, and no partial file is left (nor the one a worker killed mid-write
    in an earlier run left: planted here, since the kill may not land mid-write)."""
    inputs = _write_images(tmp_path / "in", [(96, 104, 3)] * 6, seed=1)
    want = tmp_path / "want"
    assert main(["segment", str(model_file), *map(str, inputs), "--out", str(want)]) == 0
    out, result = tmp_path / "out", {}
    out.mkdir()
    (out / f".{inputs[0].stem}_prob.png.k1ll3d00.tmp").write_bytes(b"half a PNG")
    with local_cluster(2, 1) as cluster, Client(cluster) as c:
        pids = c.run(os.getpid)
        run = threading.Thread(target=lambda: result.update(
            report=distributed.segment_many(model_file, inputs, out, client=c)))
        run.start()
        victim, held = _stop_a_busy_worker(c, pids)
        os.kill(pids[victim], signal.SIGKILL)
        run.join(timeout=120)
        assert not run.is_alive()
    report = result["report"]
    assert [r.status for r in report] == ["done"] * len(inputs)
    for key in held:  # the tasks the dead worker held were done again by another one
        assert report[int(key.rsplit("-", 1)[1])].worker != victim
    assert not psutil.pid_exists(pids[victim]) or \
        psutil.Process(pids[victim]).status() == psutil.STATUS_ZOMBIE
    assert_same_files(out, want, outputs_of(inputs))
    assert sorted(os.listdir(out)) == sorted(outputs_of(inputs) + run_files(inputs))


def _stop_a_busy_worker(client, pids, timeout=60):
    """SIGSTOP a worker that holds unfinished tasks; return it and those tasks' keys.

    Stopped, the worker cannot finish anything, so after a moment for messages already
    sent, the tasks the scheduler still sees on it are certainly unfinished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = {w: keys for w, keys in client.processing().items() if keys}
        for worker, keys in busy.items():
            if not any(str(k).startswith("fastseg-segment-") for k in keys):
                continue
            os.kill(pids[worker], signal.SIGSTOP)
            time.sleep(0.3)
            held = [str(k) for k in client.processing().get(worker, ())
                    if str(k).startswith("fastseg-segment-")]
            if held:
                return worker, held
            os.kill(pids[worker], signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("no worker ever held a segmentation task")


# ---- threads ----------------------------------------------------------------------------


def test_each_worker_runs_its_kernels_on_its_own_thread_count(client, model_file, images,
                                                              tmp_path):
    from threadpoolctl import threadpool_info

    distributed.segment_many(model_file, images[:2], tmp_path, client=client)
    seen = client.run(lambda: (fastseg.get_num_threads(),
                               sorted({p["num_threads"] for p in threadpool_info()})))
    assert seen and all(got == (1, [1]) for got in seen.values()), seen


def test_one_segmentation_at_a_time_per_process():
    """Worker threads share the process's kernel threads: predict_proba never overlaps."""
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    class Slow:
        def predict_proba(self, *args, **kwargs):
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.02)
            with lock:
                state["now"] -= 1

    wrapped = _worker._OneAtATime(Slow())
    threads = [threading.Thread(target=wrapped.predict_proba) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["most"] == 1


def test_local_layout_splits_the_cores():
    from fastseg.distributed import _cluster

    n = _cluster.cores()
    assert _cluster.local_layout() == (n, 1)
    assert _cluster.local_layout(n_workers=1) == (1, n)
    assert _cluster.local_layout(n_workers=2 * n) == (2 * n, 1)
    assert _cluster.local_layout(threads_per_worker=n) == (1, n)
    with pytest.raises(ValueError, match="n_workers"):
        _cluster.local_layout(n_workers=0)


# ---- segment_large -------------------------------------------------------------------


@pytest.fixture(scope="module")
def network():
    fastseg.seed(5)
    return models.lai2d(patch_size=PATCH, hidden=8).eval()


@pytest.fixture(scope="module")
def big_image():
    rng = np.random.default_rng(7)
    return rng.standard_normal((1, 83, 71)).astype(np.float32), rng.random((83, 71)) > 0.3


@pytest.mark.parametrize("chunks", [(37, 29), (5, 13), (83, 71), 24])
def test_segment_large_equals_segment(client, network, big_image, chunks):
    image, _ = big_image
    prob = distributed.segment_large(network, image, client=client, chunks=chunks)
    assert prob.shape == image.shape[1:] and prob.dtype == np.float32
    np.testing.assert_array_equal(client.compute(prob).result(), fastseg.segment(network, image))


def test_segment_large_with_fov_on_threads_and_segmenter(model_file, big_image):
    """No cluster at all (dask's threads), a (H, W) image, a FOV, a Segmenter."""
    image, fov = big_image
    seg = Segmenter.load(model_file)
    want = fastseg.segment(seg.model_, image[0], fov=fov, patch_size=PATCH)
    got = distributed.segment_large(seg, image[0], chunks=(17, 30), fov=fov)
    np.testing.assert_array_equal(got.compute(scheduler="threads"), want)
    # A FOV read as every FOV is: any non-zero value inside (a 0/255 mask file's values).
    got = distributed.segment_large(seg, image[0], chunks=29, fov=fov.astype(np.uint8) * 255)
    np.testing.assert_array_equal(got.compute(scheduler="threads"), want)


def test_segment_large_writes_zarr_chunk_by_chunk(client, network, big_image, tmp_path):
    import zarr

    image, _ = big_image
    source = zarr.open_array(str(tmp_path / "image.zarr"), mode="w", shape=image.shape,
                             chunks=(1, 25, 25), dtype=np.float32)
    source[:] = image  # read chunk by chunk by the workers, never whole by the caller
    out = tmp_path / "prob.zarr"
    got = distributed.segment_large(network, source, client=client, chunks=(30, 40), out=out)
    stored = zarr.open_array(str(out), mode="r")
    assert stored.chunks == (30, 40) and stored.dtype == np.float32
    want = fastseg.segment(network, image)
    np.testing.assert_array_equal(stored[:], want)
    np.testing.assert_array_equal(got.compute(scheduler="sync"), want)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        distributed.segment_large(network, image, client=client, out=out)


def test_segment_large_bad_input(network, big_image):
    image, fov = big_image
    with pytest.raises(ValueError, match="takes 1 channel"):
        distributed.segment_large(network, np.zeros((3, 20, 20), np.float32))
    with pytest.raises(ValueError, match="fov: expected shape"):
        distributed.segment_large(network, image, fov=fov[:-1])
    with pytest.raises(ValueError, match="chunks"):
        distributed.segment_large(network, image, chunks=(10, 10, 10))
    with pytest.raises(ValueError, match="chunks"):
        distributed.segment_large(network, image, chunks=0)
    with pytest.raises(ValueError, match=r"image: expected a non-empty"):
        distributed.segment_large(network, np.zeros((2, 1, 20, 20), np.float32))
    with pytest.raises(TypeError, match="model"):
        distributed.segment_large("not a model".split(), image)
    bad = image.copy()
    bad[0, 40, 40] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        distributed.segment_large(network, bad, chunks=30).compute(scheduler="sync")
    holed = fov.astype(np.float32)
    holed[3, 3] = np.nan
    with pytest.raises(ValueError, match="fov: contains NaN"):
        distributed.segment_large(network, image, fov=holed, chunks=30).compute(scheduler="sync")
    with pytest.raises(TypeError, match="fov: expected a numeric or bool"):
        distributed.segment_large(network, image, fov=np.full(fov.shape, "x"))


# ---- volumes ---------------------------------------------------------------------------

#: (model, kind, patch size) of small volume networks, one per kind that needs a margin
#: along other axes: stacked planes (one plane each side along its axis), three planes,
#: a pooled cube.
VOLUME_KINDS = [("lai_stacked2d", "stacked2d", 7), ("lai_triplanar", "triplanar", 7),
                ("lai3d", "3d", 8)]


def _volume_segmenter(model, kind, size):
    """An untrained small volume segmenter, its threshold the median probability of a noise
    volume (masks neither empty nor full)."""
    fastseg.seed(4)
    seg = Segmenter(model=model, kind=kind, patch_size=size, prior_correction=False,
                    model_kwargs={"hidden": 8, "conv_channels": (3, 4), "kernel_size": 3})
    seg.model_ = seg._build().eval()
    seg.cutter_ = seg.model_.cutter = seg.kind_cutter()
    noise = np.random.default_rng(1).standard_normal((12, 13, 11)).astype(np.float32)
    seg.threshold = float(np.median(seg.predict_proba(noise)))
    return seg


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(8).standard_normal((23, 19, 29)).astype(np.float32)


@pytest.mark.parametrize("model, kind, size", VOLUME_KINDS)
@pytest.mark.parametrize("chunks", [(7, 11, 13), (5, 19, 4)])
def test_segment_large_on_a_volume_equals_segment(client, volume, model, kind, size, chunks):
    """Chunk borders at odd places, chunks thinner than the patch (merged), per kind."""
    seg = _volume_segmenter(model, kind, size)
    prob = distributed.segment_large(seg, volume, client=client, chunks=chunks)
    assert prob.shape == volume.shape and prob.dtype == np.float32
    assert len(prob.chunks[0]) > 1 and len(prob.chunks[2]) > 1
    np.testing.assert_array_equal(client.compute(prob).result(),
                                  fastseg.segment(seg.model_, volume))


def test_segment_large_of_a_scan_with_its_affine_equals_segment(client, volume):
    """A scan in another axis order and voxel size: conformed, segmented in chunks, mapped
    back, as fastseg.segment does it with the affine."""
    seg = _volume_segmenter("lai3d", "3d", 8)
    affine = np.array([[0, 0, -1.3, 20], [0.9, 0, 0, -8], [0, 1.1, 0, 3], [0, 0, 0, 1.0]])
    prob = distributed.segment_large(seg.model_, volume, client=client, chunks=(9, 10, 11),
                                     affine=affine)
    assert prob.shape == volume.shape
    want = fastseg.segment(seg.model_, volume, affine=affine)
    assert want.shape == volume.shape and want.std() > 0
    np.testing.assert_array_equal(client.compute(prob).result(), want)


def test_segment_large_volume_bad_input(volume):
    seg = _volume_segmenter("lai3d", "3d", 8)
    with pytest.raises(ValueError, match=r"chunks: expected an int or 3 ints \(D, H, W\)"):
        distributed.segment_large(seg, volume, chunks=(10, 10))
    with pytest.raises(ValueError, match="smaller than the 3d patch"):
        distributed.segment_large(seg, volume[:5])
    with pytest.raises(ValueError, match="differs from the 3d cutter"):
        distributed.segment_large(seg, volume, patch_size=12)


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory):
    """Three small scans (.nii and .nii.gz, oblique affine), a lai3d segmenter's file and
    what the sequential `fastseg segment` writes for them."""
    import nibabel as nib

    root = tmp_path_factory.mktemp("volumes")
    (root / "in").mkdir()
    rng = np.random.default_rng(9)
    affine = np.array([[0, 0, 1.5, -3], [1.1, 0, 0, 7], [0, 0.9, 0, 2], [0, 0, 0, 1.0]])
    for i, (shape, suffix) in enumerate([((12, 15, 11), ".nii.gz"), ((9, 13, 16), ".nii"),
                                         ((14, 10, 12), ".nii.gz")]):
        data = (rng.standard_normal(shape) * 100 + 400).astype(np.int16)
        nib.Nifti1Image(data, affine).to_filename(root / "in" / f"scan{i}{suffix}")
    model = root / "model.fseg"
    _volume_segmenter("lai3d", "3d", 8).save(model)
    assert main(["segment", str(model), str(root / "in"), "--out", str(root / "sequential")]) == 0
    return root


def test_segment_many_on_volumes_writes_the_sequential_files(client, volume_files, tmp_path):
    names = sorted(os.listdir(volume_files / "sequential"))
    scans = sorted((volume_files / "in").iterdir())
    outputs = [n for n in names if n not in run_files(scans) + ["volumes.csv"]]
    assert len(outputs) == 3 * 4 and "scan1_prob.nii.gz" in names and "scan1_left.png" in names
    assert "volumes.csv" in names
    report = distributed.segment_many(volume_files / "model.fseg", [volume_files / "in"],
                                      tmp_path, client=client)
    assert [r.status for r in report] == ["done"] * 3
    assert [r.shape for r in report] == [(12, 15, 11), (9, 13, 16), (14, 10, 12)]
    assert sorted(os.listdir(tmp_path)) == names
    # The outputs and the volumes table byte for byte; the records but for time and worker.
    assert_same_files(tmp_path, volume_files / "sequential", outputs + ["volumes.csv"])
    same_records(tmp_path, volume_files / "sequential", scans)
    again = distributed.segment_many(volume_files / "model.fseg", [volume_files / "in"],
                                     tmp_path, client=client, skip_existing=True)
    assert [r.status for r in again] == ["skipped"] * 3


# ---- the command line, shutdown, no Dask ----------------------------------------------


def _threads_and_children():
    return ({t.ident: t.name for t in threading.enumerate()},
            {p.pid: " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)})


#: Process-wide singletons made once, on first use, by the libraries: Python's
#: multiprocessing resource tracker, distributed's offload thread and tqdm's monitor.
SINGLETONS = ("multiprocessing.resource_tracker", "Dask-Offload", "tqdm_monitor")


def test_cli_workers_2_and_a_clean_shutdown(model_file, images, expected, tmp_path, capsys):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"GIF89a garbage")
    threads_before, children_before = _threads_and_children()
    code = main(["segment", str(model_file), str(images[0].parent), str(bad), "--out",
                 str(tmp_path / "out"), "--workers", "2", "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 1  # a file failed
    assert out.strip().splitlines()[-1].startswith(f"{len(images)} done, 0 skipped, 1 failed")
    assert "2 workers x 1 thread" in out
    assert err.count("\n") == 1 and "corrupt.png: failed: cannot read image" in err
    assert_same_files(tmp_path / "out", expected, outputs_of(images))

    # Everything the local cluster started is gone (threads may take a moment to exit).
    deadline = time.monotonic() + 30
    while True:
        threads, children = _threads_and_children()
        new = [name for ident, name in threads.items() if ident not in threads_before] + \
            [cmd for pid, cmd in children.items() if pid not in children_before]
        new = [n for n in new if not any(s in n for s in SINGLETONS)]
        if not new or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert new == []


def test_cli_scheduler_address(client, model_file, images, expected, tmp_path, capsys):
    address = client.scheduler.address
    code = main(["segment", str(model_file), *map(str, images), "--out", str(tmp_path),
                 "--scheduler", address])
    out = capsys.readouterr().out
    assert code == 0 and f"{len(images)} done, 0 skipped, 0 failed" in out
    assert "2 workers x 1 thread" in out
    assert_same_files(tmp_path, expected, outputs_of(images))
    assert client.scheduler_info()["workers"]  # the caller's cluster is left running


def test_without_dask_the_error_says_what_to_install(model_file, images, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError) as info:
        distributed.segment_many(model_file, images, tmp_path)
    assert str(info.value).endswith('pip install "fastseg[distributed]"')
    with pytest.raises(ImportError, match=r'pip install "fastseg\[distributed\]"'):
        distributed.segment_large(model_file, np.zeros((30, 30), np.float32))
    code = main(["segment", str(model_file), str(images[0]), "--out", str(tmp_path),
                 "--workers", "2"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert err.strip().endswith('pip install "fastseg[distributed]"')
    assert os.listdir(tmp_path) == []
