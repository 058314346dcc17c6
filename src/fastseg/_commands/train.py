"""``fastseg train``: train a patch network on a data set and save it as a segmenter.

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
from fastseg._commands import CLIError
from fastseg._files import atomic_write

#: Models `fastseg train` can fit: patch classifiers of one 2-D input.
PATCH_MODELS = ("lai2d", "lai_stacked2d")


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
        root = Path(where)
        if not root.is_dir():
            raise CLIError(f"data folder not found: {root}")
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


def run(args) -> int:
    from fastseg import diagnostics, models, pretrain
    from fastseg.segmenter import Segmenter

    if args.model not in PATCH_MODELS:
        why = ("it is not a model name" if args.model not in models.names() else
               "it is not a patch classifier of one 2-D input")
        raise CLIError(f"--model {args.model}: cannot train it here ({why}); choose one of "
                       f"{', '.join(PATCH_MODELS)}")
    out = Path(args.out)
    checkpoint = out / "checkpoint.fseg"
    if args.resume and not checkpoint.is_file():
        raise CLIError(f"--resume: no checkpoint to resume from at {checkpoint}")
    seed = 0 if args.seed is None else args.seed
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
    print(f"training {seg!r}{how} on {len(samples)} image(s) from {args.data}")
    seg.fit([s.image for s in samples], [s.mask for s in samples], [s.fov for s in samples],
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
    losses = ", ".join(f"{v:.4f}" for v in history["loss"])
    print(f"epoch losses: {losses}\nwrote {out / 'model.fseg'}, {written}")
    return 0
