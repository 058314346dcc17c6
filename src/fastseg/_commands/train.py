"""``fastseg train``: train a patch network on a data set and save it as a segmenter.

Photos (``--data synthetic | drive:ROOT | folder:DIR``) train lai2d or lai_stacked2d
on 2-D patches; scans (``--data mri | msd:ROOT | nifti:DIR``) train one of the
report's four volume kinds (:data:`VOLUME_KINDS`) with the settings the MRI trials
found to work (:data:`VOLUME_DEFAULTS`), the threshold chosen on the training scans.

With ``--pretrain layerwise`` the hidden layers are first pre-trained as denoising
autoencoders (:func:`fastseg.pretrain.layerwise`); with ``--teacher MODEL.fseg`` the
network learns a trained model's logits (:func:`fastseg.train.mimic`); with
``--diagnostics`` per-layer gradient norms, update ratios and dead ReLUs are
recorded and plotted (:mod:`fastseg.diagnostics`).
"""
from __future__ import annotations

import json
from pathlib import Path

from fastseg import viz
from fastseg._atomic import atomic_write, remove_stale_temporaries
from fastseg._commands import CLIError

#: Models `fastseg train` can fit on photos: patch classifiers of one 2-D input.
PATCH_MODELS = ("lai2d", "lai_stacked2d")
#: Models it can fit on volumes, and the volume kind each is trained as.
VOLUME_KINDS = {"lai2d": "2d", "lai_stacked2d": "stacked2d", "lai_triplanar": "triplanar",
                "lai3d": "3d"}
#: ``--data`` names of volume data sets.
VOLUME_DATA = ("mri", "msd", "nifti")
#: Defaults of the options left unset, for photos and for volumes (patch size per model).
PHOTO_DEFAULTS = {"patch_size": 24, "batch_size": 128, "lr": 0.01, "optimizer": "sgd",
                  "hidden": None, "batches": None, "epochs": 5}
VOLUME_DEFAULTS = {"patch_size": {"lai2d": 24, "lai_stacked2d": 24, "lai_triplanar": 16,
                                  "lai3d": 16},
                   "batch_size": 64, "lr": 0.001, "optimizer": "adam", "hidden": 128,
                   "batches": 240, "epochs": 5, "keep_largest": 1}


def _data_folder(where) -> Path:
    """The folder a ``--data kind:DIR`` names, which must exist."""
    root = Path(where)
    if not root.is_dir():
        raise CLIError(f"data folder not found: {root}")
    return root


def is_volume_data(spec: str) -> bool:
    """Whether ``--data`` names scans (rather than photos)."""
    return spec.partition(":")[0] in VOLUME_DATA


#: What ``--data mri`` and ``mri:crop`` train on, for the model card.
BUILT_IN = {"mri": "built-in MNI152 T1 template, whole brain, hippocampi by a vote of 3 atlases",
            "mri:crop": "built-in MNI152 T1 template, a box around each hippocampus"}


def load_volumes(spec: str):
    """The labelled scans named by ``--data``: ``mri`` (the built-in hippocampus set's
    training split, whole brains; ``mri:crop`` its boxes around each hippocampus),
    ``msd:ROOT`` (a Decathlon task's training cases) or ``nifti:DIR``
    (``DIR/images`` and ``DIR/labels``, or ``DIR/masks``, paired by name)."""
    from fastseg import data

    kind, _, where = spec.partition(":")
    if kind == "mri" and not where:
        return data.hippocampus_mri("train", region="brain")
    if kind == "mri" and where == "crop":
        return data.hippocampus_mri("train")
    if kind == "msd" and where:
        return data.load_msd(where, "training")
    if kind == "nifti" and where:
        root = _data_folder(where)
        labels = root / "labels" if (root / "labels").is_dir() else root / "masks"
        return data.load_nifti_folder(root / "images", labels)
    raise CLIError(f"--data: expected mri, mri:crop, msd:ROOT or nifti:DIR, got {spec!r}")


def _fill_defaults(args, volumes: bool) -> None:
    """Set the options the user left unset to the photo or volume defaults."""
    defaults = VOLUME_DEFAULTS if volumes else PHOTO_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value[args.model] if isinstance(value, dict) else value)


def _check_volume_args(args) -> None:
    if args.model not in VOLUME_KINDS:
        raise CLIError(f"--model {args.model}: cannot train it on volumes; choose one of "
                       f"{', '.join(VOLUME_KINDS)}")
    for flag, value in (("--channels", args.channels), ("--teacher", args.teacher),
                        ("--pretrain", args.pretrain)):
        if value is not None:
            raise CLIError(f"{flag} is for photos; --data {args.data} holds volumes")


def load_data(spec: str, images: int = 8, size=(292, 282), seed: int = 0):
    """The training samples named by ``--data``.

    ``synthetic`` (the built-in set), ``drive:ROOT`` (the DRIVE training split)
    or ``folder:DIR`` (``DIR/images`` and ``DIR/masks``, plus ``DIR/fov`` when it
    exists, paired as :func:`fastseg.data.load_folder` pairs them).
    """
    from fastseg import data

    kind, _, where = spec.partition(":")
    if kind == "synthetic" and not where:
        return data.synthetic_fundus(images, shape=tuple(size), seed=seed, split="training")
    if kind == "drive" and where:
        return data.load_drive(where, "training")
    if kind == "folder" and where:
        root = _data_folder(where)
        fov = root / "fov"
        return data.load_folder(root / "images", root / "masks",
                                fov if fov.is_dir() else None)
    raise CLIError(f"--data: expected synthetic, drive:ROOT or folder:DIR, got {spec!r}")


def _load_teacher(args):
    """The --teacher segmenter, checked against the student's patch size and channels."""
    from fastseg.segmenter import Segmenter

    teacher = Segmenter.load(args.teacher)
    if int(teacher.patch_size) != args.patch_size:
        raise CLIError(f"--teacher {args.teacher}: it classifies {teacher.patch_size}x"
                       f"{teacher.patch_size} patches, but --patch-size is {args.patch_size}; "
                       "the student must see the teacher's patches")
    if args.channels is not None and args.channels != teacher.channels:
        raise CLIError(f"--teacher {args.teacher}: it takes {teacher.channels} input, but "
                       f"--channels is {args.channels}")
    return teacher


def _photo_segmenter(args, seed):
    """The photos' segmenter and training data (and the teacher, if any)."""
    from fastseg import models
    from fastseg.segmenter import Segmenter

    if args.model not in PATCH_MODELS:
        why = ("it is not a model name" if args.model not in models.names() else
               "it is not a patch classifier of one 2-D input")
        raise CLIError(f"--model {args.model}: cannot train it here ({why}); choose one of "
                       f"{', '.join(PATCH_MODELS)}")
    if args.keep_largest is not None:
        raise CLIError("--keep-largest is for volumes; photos keep every vessel pixel")
    if args.patch_size < 10:
        raise CLIError(f"--patch-size {args.patch_size}: photo patches need at least 10 pixels")
    teacher = _load_teacher(args) if args.teacher else None
    samples = load_data(args.data, args.images, args.size, seed)
    channels = (args.channels or (teacher.channels if teacher is not None else None)
                or ("rgb" if args.model == "lai_stacked2d" else "green"))
    if channels == "rgb" and any(s.image.ndim == 2 for s in samples):
        raise CLIError("--channels rgb needs colour images, but the data has greyscale ones")
    seg = Segmenter(model=args.model, patch_size=args.patch_size, channels=channels,
                    epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    optimizer=args.optimizer, seed=seed, batches_per_epoch=args.batches,
                    model_kwargs={"hidden": args.hidden} if args.hidden else None)
    return seg, samples, [s.fov for s in samples], teacher


def _volume_segmenter(args, seed):
    """The scans' segmenter and training data."""
    from fastseg.segmenter import Segmenter

    samples = load_volumes(args.data)
    seg = Segmenter(model=args.model, kind=VOLUME_KINDS[args.model],
                    patch_size=args.patch_size, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                    seed=seed, batches_per_epoch=args.batches,
                    model_kwargs={"hidden": args.hidden}, threshold="auto",
                    keep_largest=args.keep_largest or None)
    seg.training_data_ = BUILT_IN.get(args.data, args.data)
    return seg, samples, None, None


def run(args) -> int:
    from fastseg import diagnostics, pretrain

    volumes = is_volume_data(args.data)
    if volumes:
        _check_volume_args(args)  # before the defaults, which depend on the model
    _fill_defaults(args, volumes)
    out = Path(args.out)
    checkpoint = out / "checkpoint.fseg"
    if args.resume and not checkpoint.is_file():
        raise CLIError(f"--resume: no checkpoint to resume from at {checkpoint}")
    seed = 0 if args.seed is None else args.seed
    make = _volume_segmenter if volumes else _photo_segmenter
    seg, samples, fovs, teacher = make(args, seed)
    pretrained = {}

    def layerwise(net, sampler):
        patches = pretrain.unlabelled_patches(sampler, args.pretrain_patches)
        print(f"pre-training the hidden layers on {len(patches)} patches")
        pretrain.layerwise(net, patches, epochs=args.pretrain_epochs, seed=seed,
                           history=pretrained, progress=True)
        for layer, losses in pretrained.items():
            print(f"  {layer}: reconstruction loss {losses[0]:.4f} -> {losses[-1]:.4f}")

    out.mkdir(parents=True, exist_ok=True)
    how = f" on the logits of {args.teacher}" if teacher is not None else ""
    what = "scan(s)" if volumes else "image(s)"
    print(f"training {seg!r}{how} on {len(samples)} {what} from {args.data}")
    # Scans bring their affines: conformed to the model's voxel size and RAS+ order.
    affines = [s.affine for s in samples] if volumes else None
    seg.fit([s.image for s in samples], [s.mask for s in samples], fovs, affines=affines,
            checkpoint=checkpoint, resume=checkpoint if args.resume else None,
            diagnostics=args.diagnostics, pretrain=layerwise if args.pretrain else None,
            teacher=None if teacher is None else teacher.model_)
    seg.save(out / "model.fseg")
    history = {k: v for k, v in seg.history_.items() if k != "step_loss"}
    if pretrained:
        history["pretrain"] = pretrained
    atomic_write(out / "history.json",
                     lambda f: f.write((json.dumps(history, indent=2) + "\n").encode()))
    viz.plot_curves(out / "curves.png", {"loss": history["loss"]}, title=f"{args.model} training")
    written = "history.json, curves.png"
    if args.diagnostics:
        diagnostics.plot(out / "diagnostics.png", history["diagnostics"],
                         title=f"{args.model}: per-layer diagnostics")
        written += ", diagnostics.png"
    # Temporaries a killed earlier run left (a checkpoint half written when it died).
    remove_stale_temporaries(out, ["checkpoint.fseg", "model.fseg", "history.json",
                                   "curves.png", "diagnostics.png"])
    losses = ", ".join(f"{v:.4f}" for v in history["loss"])
    chosen = f"\nthreshold chosen on the training scans: {seg.decision_threshold():.2f}" \
        if volumes else ""
    print(f"epoch losses: {losses}{chosen}\nwrote {out / 'model.fseg'}, {written}")
    return 0
