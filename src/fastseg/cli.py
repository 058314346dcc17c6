"""The ``fastseg`` command line.

Each subcommand is a function taking the parsed arguments and returning an
exit code (the long ones live in :mod:`fastseg._commands`). Expected failures
-- fastseg's own errors (:class:`fastseg.errors.FastsegError`: bad values, bad
files, a backend that cannot run here, ``CLIError``) and the operating
system's (a missing file, a permission, a full disk) -- print one line
``fastseg <cmd>: error: ...`` and exit with status 2, never a traceback. Any
other exception is a bug in fastseg: it shows its traceback and a line asking
for a report, and exits with status 1. Usage errors (unknown options,
malformed values) are argparse's, also status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from fastseg import _memory
from fastseg._commands import CLIError, bench, export, report
from fastseg._commands import tune as tune_command
from fastseg.errors import USER_ERRORS

__all__ = ["main", "build_parser", "CLIError"]


def _apply_common(args) -> None:
    import fastseg

    if getattr(args, "backend", None):
        fastseg.set_backend(args.backend)
    if getattr(args, "threads", None) is not None:
        fastseg.set_num_threads(args.threads)
    if getattr(args, "seed", None) is not None:
        fastseg.seed(args.seed)
    if getattr(args, "memory_limit", None) is not None:
        _memory.set_limit(args.memory_limit, "--memory-limit")
        # Worker processes this command starts (a local Dask cluster) inherit it.
        os.environ[_memory.ENV] = args.memory_limit


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int>={minimum}"
    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _scale(text):
    if text.strip().lower() == "auto":
        return None
    return _positive_float(text)


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


POSITIVE = _int_at_least(1)
NON_NEGATIVE = _int_at_least(0)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["c", "numpy", "cuda"], help="kernel backend (default c)")
    p.add_argument("--threads", type=POSITIVE, help="threads for the compiled kernels")
    p.add_argument("--seed", type=NON_NEGATIVE, help="seed of weight initialisation and "
                   "sampling (default 0)")


def _memory_size(text):
    """--memory-limit's value, checked when parsed (kept as text: _apply_common sets it)."""
    try:
        _memory.parse_size(text, "--memory-limit")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--memory-limit: ")) from None
    return text


def _command(sub, name, run, help, description=None, common=True, memory=False):
    """Subcommand `name`'s parser: `help` is its line in ``fastseg --help``, `description`
    what ``fastseg NAME --help`` says; it takes the common options (--backend, --threads,
    --seed) unless `common` is false, --memory-limit where `memory` (it segments or
    trains), and ``run(args)`` runs it."""
    p = sub.add_parser(name, help=help, description=description)
    if common:
        _add_common(p)
    if memory:
        p.add_argument("--memory-limit", type=_memory_size, metavar="SIZE",
                       help="most memory the process may take, e.g. 8G or 512M (powers of "
                       "1024; 'off' checks nothing); work estimated above it runs in smaller "
                       "tiles or is refused before it starts (default: FASTSEG_MEMORY_LIMIT, "
                       "else the memory available)")
    p.set_defaults(func=run)
    return p


def cmd_info(args) -> int:
    from fastseg import info

    data = info.collect()
    print(json.dumps(data, indent=2) if args.json else info.format_info(data))
    return 0


def cmd_demo(args) -> int:
    if args.which == "mri":
        from fastseg._commands import demo_mri

        return demo_mri.run(args)
    from fastseg._commands import demo

    if args.out is None:
        args.out = "fastseg-demo"
    return demo.run(args)


def cmd_train(args) -> int:
    from fastseg._commands import train

    return train.run(args)


def cmd_segment(args) -> int:
    from fastseg._commands import segment

    return segment.run(args)


def cmd_evaluate(args) -> int:
    from fastseg._commands import evaluate

    return evaluate.run(args)


def cmd_experiment(args) -> int:
    from fastseg._commands import experiment

    return experiment.run(args)


def _demo_parser(sub):
    p = _command(
        sub, "demo", cmd_demo, memory=True,
        help="train and evaluate on built-in data: fundus photos or brain MRI",
        description="fundus (the default): generate a synthetic fundus train/test split, train "
        "lai2d on patches, segment the test images densely, train the re-implementation's "
        "whole-image network for comparison, print the metrics and write pictures. The "
        "defaults (8 training and 8 test images of 292x282, half DRIVE's size, 12 epochs of "
        "50 batches) take about 5 minutes on 2 cores: dense lai2d costs ~13 M multiply-adds "
        "per pixel, so full-size images would cost four times as much to segment. "
        "mri: the report's comparison of its four networks (2-D, stacked 2-D, tri-planar, "
        "3-D) on real brain MRI (pip install \"fastseg[mri]\"): train each on the MNI152 "
        "template's hippocampi, segment the held-out ICBM 2009c template's, print Dice, "
        "HD95 and the times, write pictures and metrics.json (under 10 minutes on 2 cores).")
    p.add_argument("which", nargs="?", choices=["fundus", "mri"], default="fundus",
                   help="which demo (default fundus)")
    p.add_argument("--out", help="output folder (default ./fastseg-demo, or ./fastseg-demo-mri)")
    p.add_argument("--quick", action="store_true", help="a smoke run of under a minute")
    knobs = p.add_argument_group("tuning (defaults depend on --quick)")
    knobs.add_argument("--size", type=POSITIVE, nargs=2, metavar=("H", "W"),
                       help="image size (>= 64 each)")
    knobs.add_argument("--train-images", type=POSITIVE, help="training images")
    knobs.add_argument("--test-images", type=POSITIVE, help="test images")
    knobs.add_argument("--epochs", type=POSITIVE, help="lai2d epochs")
    knobs.add_argument("--batches", type=POSITIVE, help="lai2d batches of 128 patches per epoch")
    knobs.add_argument("--hidden", type=POSITIVE, help="units of lai2d's hidden layer (1000)")
    knobs.add_argument("--patch-size", type=_int_at_least(10), help="lai2d patch size (24)")
    knobs.add_argument("--whole-epochs", type=NON_NEGATIVE,
                       help="epochs of the whole-image network (0 skips it)")
    knobs.add_argument("--whole-size", type=_int_at_least(16),
                       help="side of the downscaled images of the whole-image network")
    knobs.add_argument("--gif-size", type=_int_at_least(16),
                       help="side of the test crop segmented every epoch for the GIF")


def _train_parser(sub):
    p = _command(
        sub, "train", cmd_train, memory=True,
        help="train a patch network and save it as a segmenter",
        description="Train a patch classifier on a data set and write DIR/model.fseg (the "
        "network with its patch size and preprocessing), DIR/history.json, DIR/curves.png and "
        "DIR/checkpoint.fseg (written every epoch; --resume continues from it).")
    p.add_argument("--data", default="synthetic",
                   help="photos: synthetic (built-in), drive:ROOT (DRIVE layout, training "
                   "split) or folder:DIR (DIR/images, DIR/masks and optionally DIR/fov, paired "
                   "by name); volumes (pip install \"fastseg[mri]\"): mri (the built-in "
                   "hippocampus scans, training split, whole brains; mri:crop a box around "
                   "each hippocampus), msd:ROOT (a Medical Segmentation "
                   "Decathlon task folder, every non-zero label) or nifti:DIR (DIR/images and "
                   "DIR/labels of .nii/.nii.gz, paired by name); default synthetic")
    p.add_argument("--model", default="lai2d",
                   help="photos: lai2d or lai_stacked2d; volumes: lai2d (2-D planes), "
                   "lai_stacked2d (neighbouring planes as channels), lai_triplanar or lai3d "
                   "(default lai2d)")
    p.add_argument("--epochs", type=POSITIVE, help="epochs (default 5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.fseg")
    p.add_argument("--patch-size", type=_int_at_least(4),
                   help="default 24 (volumes: 24 for lai2d and lai_stacked2d, 16 for "
                   "lai_triplanar and lai3d); photos need at least 10")
    p.add_argument("--channels", choices=["green", "grey", "rgb"],
                   help="photos: network input (default green; rgb for lai_stacked2d)")
    p.add_argument("--batch-size", type=POSITIVE, help="default 128 (volumes 64)")
    p.add_argument("--batches", type=POSITIVE,
                   help="batches per epoch (default: about one visit per vessel pixel; "
                   "volumes 240)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default 0.01; volumes "
                   "0.001)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "rprop"],
                   help="default sgd (volumes adam)")
    p.add_argument("--hidden", type=POSITIVE, help="units of the hidden layer (default 1000; "
                   "volumes 128)")
    p.add_argument("--keep-largest", type=NON_NEGATIVE, metavar="N",
                   help="volumes: keep the N largest connected components of each mask "
                   "(default 1: one structure per scan; 0 keeps every voxel)")
    p.add_argument("--images", type=POSITIVE, default=8,
                   help="synthetic only: number of training images (default 8)")
    p.add_argument("--size", type=POSITIVE, nargs=2, metavar=("H", "W"), default=(292, 282),
                   help="synthetic only: image size (default 292 282)")
    ideas = p.add_argument_group("the report's training ideas")
    ideas.add_argument("--diagnostics", type=POSITIVE, nargs="?", const=10, metavar="STEPS",
                       help="every STEPS steps (default 10) record each layer's gradient norm, "
                       "update/weight ratio and dead-ReLU fraction; writes DIR/diagnostics.png")
    ideas.add_argument("--pretrain", choices=["layerwise"],
                       help="first pre-train the hidden layers, one by one, as denoising "
                       "autoencoders of unlabelled training patches")
    ideas.add_argument("--pretrain-patches", type=POSITIVE, default=2048,
                       help="patches for --pretrain (default 2048)")
    ideas.add_argument("--pretrain-epochs", type=POSITIVE, default=2,
                       help="epochs per layer for --pretrain (default 2)")
    ideas.add_argument("--teacher", metavar="MODEL.fseg",
                       help="train on this trained model's logits (mimic training, squared "
                       "error) instead of the labels; it must use the same patch size")


def _segment_parser(sub):
    p = _command(
        sub, "segment", cmd_segment, memory=True,
        help="segment image or volume files with a trained model",
        description="Segment each image (png, tif, jpg, gif; RGB or greyscale; any size). "
        "For INPUT <stem>.<ext> it writes <stem>_prob.png (probability x 255), "
        "<stem>_mask.png (0/255) and <stem>_overlay.png (the mask in green on the image). "
        "The field of view is read from --fov DIR (files paired by name, e.g. "
        "01_test_mask.gif for 01_test.tif) or estimated by thresholding the dark surround. "
        "A photo whose field of view is wider or narrower than the model's training images' "
        "is resampled to their scale and its maps brought back to its own size (--scale). "
        "With a volume model (fastseg train --data mri|msd:|nifti:), each scan <stem>.nii or "
        "<stem>.nii.gz, in any axis order and voxel size (conformed to the model's grid, the "
        "maps brought back), gives <stem>_prob.nii.gz (float32) and <stem>_mask.nii.gz "
        "(uint8: 1 left, 2 right hippocampus), both with the scan's affine and header so "
        "they overlay on it in any viewer, <stem>_left.png and <stem>_right.png (three planes "
        "through each hippocampus, outlined), and a row of volumes.csv (mm3 per side). Every "
        "run also writes <stem>_record.json per input and report.html, one page to check "
        "every result (fastseg report DIR rebuilds it).")
    p.add_argument("model", metavar="MODEL", help="a model file (.fseg) from train or demo")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fov", metavar="DIR", help="folder of FOV masks")
    p.add_argument("--threshold", type=_fraction, help="mask threshold (default: the model's: "
                   "0.5, or for volumes the one chosen on its training scans)")
    p.add_argument("--tile", type=POSITIVE, help="output tile side (default: automatic)")
    p.add_argument("--method", choices=["auto", "direct", "fft"], default="auto",
                   help="convolutions run directly, by FFT, or per layer whichever is "
                   "estimated faster (default auto; the answers agree to 1e-4)")
    p.add_argument("--scale", type=_scale, default=None, metavar="auto|X",
                   help="resample each image by X before segmenting (1: full resolution); "
                   "default auto: bring its field of view to the diameter of the model's "
                   "training images")
    p.add_argument("--skip-existing", action="store_true",
                   help="skip inputs whose outputs all exist (resumes an interrupted run)")
    cluster = p.add_argument_group(
        "on a Dask cluster (pip install \"fastseg[distributed]\"); a file that fails is "
        "reported and the others finish; exit status 1 if any failed")
    where = cluster.add_mutually_exclusive_group()
    where.add_argument("--workers", type=POSITIVE, metavar="N",
                       help="start a local cluster of N worker processes, each with --threads "
                       "threads (default: cores / N)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running cluster, e.g. tcp://10.0.0.5:8786")


def _evaluate_parser(sub):
    p = _command(
        sub, "evaluate", cmd_evaluate, help="metrics of predictions against ground truth",
        description="Compare predictions with ground-truth masks, paired by name: a file's key "
        "is its stem without trailing tags such as _prob, _mask, _manual1, _test, _training, "
        "so 01_test_prob.png pairs with 01_manual1.gif. Probability maps (_prob) are preferred "
        "to binary masks (_mask); _overlay files are ignored. Prints Dice, IoU, accuracy, "
        "sensitivity, specificity, precision and AUC per image and their mean, inside the FOV. "
        "Volumes (.nii, .nii.gz) pair the same way (a prediction's _mask before its _prob; "
        "every non-zero truth label is the structure) and add RVD, HD95 and ASSD in mm, from "
        "the truth's voxel spacing; a fastseg label map (1 left, 2 right hippocampus) paired "
        "with a truth that labels both sides the same way also gets a table per side.")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predictions")
    p.add_argument("truth_dir", metavar="TRUTH_DIR", help="folder of ground-truth masks")
    p.add_argument("--fov", metavar="DIR", help="folder of FOV masks (default: whole image)")
    p.add_argument("--threshold", type=_fraction, default=0.5, help="default 0.5")
    p.add_argument("--csv", metavar="PATH", help="also write the table as CSV")
    p.add_argument("--json", metavar="PATH", help="also write the metrics as JSON")


def _bench_parser(sub):
    p = _command(
        sub, "bench", bench.run, common=False,
        help="time every backend (and PyTorch) on the paper's shapes",
        description="Median time per backend on the shapes of the paper's networks (GEMM, "
        "conv2d forward/backward, linear, max pooling, a training step, a dense "
        "segmentation), with the ratios of fastseg's C backend to NumPy and PyTorch. Where "
        "the onnx extra is installed (pip install \"fastseg[onnx]\"), the dense "
        "segmentation also runs fastseg's ONNX export of the same network on ONNX Runtime "
        "and OpenVINO (float32, the row's thread count). The "
        "backends run alternately in one process so machine noise hits all of them alike.")
    p.add_argument("--quick", action="store_true", help="small shapes: a smoke run in seconds")
    # Its own dest: the common --threads (one int, applied globally) means something else.
    p.add_argument("--threads", dest="thread_list", default="1,2",
                   help="thread counts to run, e.g. 1,2 (default)")
    p.add_argument("--backends", help="comma-separated subset of c,numpy,cuda,torch,"
                   "onnxruntime,openvino (default: all available here)")
    p.add_argument("--group", help="comma-separated groups, e.g. gemm,train-step")
    p.add_argument("--repeats", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--settle", type=float, default=0.2,
                   help="seconds idle before each sample, so other libraries' spinning worker "
                   "threads go to sleep (default 0.2)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")


def _export_parser(sub):
    p = _command(
        sub, "export", export.run, common=False,
        help="write a model as ONNX, for ONNX Runtime or OpenVINO",
        description="Write the network of MODEL (a .fseg file from train or demo) as an ONNX "
        "model (pip install \"fastseg[onnx]\"). By default the patch classifier as it is: "
        "input 'patch' (N, C, K, K), or (N, C, K, K, K) for a 3-D network, or 'patch_0', "
        "'patch_1', 'patch_2' for a tri-planar one; output 'logits' (N, classes). With "
        "--dense its exact fully convolutional form: input 'image' (N, C, H, W) of any size "
        "(or (N, C, D, H, W)), preprocessed as the network takes it; output "
        "'probabilities' (N, classes, H, W), at every pixel the softmax of the classifier's "
        "scores for that pixel's patch (the image mirrored at its borders as fastseg does), "
        "so channel 1 is what fastseg segment computes before calibration. Tri-planar and "
        "whole-image networks have no dense form.")
    p.add_argument("model", metavar="MODEL", help="a model file (.fseg)")
    p.add_argument("out", metavar="OUT", help="the ONNX file to write, e.g. model.onnx")
    p.add_argument("--dense", action="store_true",
                   help="the fully convolutional form over a whole image (default: the patch "
                   "classifier)")
    p.add_argument("--opset", type=int, metavar="N",
                   help="ONNX opset (default 17; at least 13)")


def _report_parser(sub):
    p = _command(
        sub, "report", report.run, common=False,
        help="one HTML page of every result in a segment output folder",
        description="Build DIR/report.html from the records fastseg segment leaves in DIR "
        "(<stem>_record.json per input, fastseg-run.json for the model, evaluation.json "
        "when fastseg evaluate has run on DIR): the model at the top, one row per input "
        "with its pictures, numbers, metrics, time and flags (empty mask, mask on the "
        "border, extra components of a volume, an outlying vessel fraction or volume, an "
        "estimated FOV, a skipped or failed input). The page opens from disk, offline; "
        "it links the pictures in DIR, so keep it beside them.")
    p.add_argument("dir", metavar="DIR", help="a fastseg segment output folder")
    p.add_argument("--z-threshold", type=_positive_float, default=3.5, metavar="Z",
                   help="robust z-score (median and MAD over the run) beyond which a vessel "
                   "fraction or volume is flagged (default 3.5)")


def _experiment_parser(sub):
    from fastseg.experiments import NAMES

    p = _command(
        sub, "experiment", cmd_experiment, memory=True,
        help="measure one of the report's training ideas on the built-in data",
        description="Train small networks on the built-in synthetic data to test one of the "
        "report's claims, and write OUT/NAME.md (a table), OUT/NAME.png (a plot) and "
        "OUT/NAME.json (settings and every curve). Experiments: " + ", ".join(NAMES) +
        "; 'all' runs each in turn. A default run takes a few minutes on 2 cores, --quick "
        "a few seconds. docs/experiments.md shows the results.")
    p.add_argument("name", metavar="NAME", help=f"{' | '.join(NAMES)} | all")
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds)")
    p.add_argument("--out", default="fastseg-experiments",
                   help="output folder (default ./fastseg-experiments)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastseg", description="Medical image segmentation with CNNs on hand-written kernels.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _command(sub, "info", cmd_info,
                 help="version, backends, instruction set, OpenMP and threads")
    p.add_argument("--json", action="store_true", help="print JSON")
    _demo_parser(sub)
    _train_parser(sub)
    _segment_parser(sub)
    _evaluate_parser(sub)
    _bench_parser(sub)
    _export_parser(sub)
    _report_parser(sub)
    tune_command.add_parser(sub)
    _experiment_parser(sub)
    return parser



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _apply_common(args)
        return args.func(args)
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error. Point
        # stdout at devnull so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except USER_ERRORS as exc:
        # One line, whatever the message: a traceback or a multi-line message would
        # bury the one thing the user has to fix. FASTSEG_DEBUG=1 shows the traceback.
        if os.environ.get("FASTSEG_DEBUG"):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"fastseg {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        # Not an error fastseg expects: a bug. Its traceback is what a fix needs.
        traceback.print_exc()
        print(f"fastseg {args.command}: internal error: this is a bug in fastseg, not a "
              "problem with your input; please report it to the fastseg developers with "
              "the command line and the traceback above", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
