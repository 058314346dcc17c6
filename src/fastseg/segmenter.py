""":class:`Segmenter`: a patch network, its patch size and its preprocessing, sklearn-style."""
from __future__ import annotations

import copy
import inspect
import os
from types import SimpleNamespace

import numpy as np

from fastseg import (
    _random,
    _validate,
    backends,
    io,
    models,
    nn,
    optim,
    postprocess,
    train,
)
from fastseg import _segmenter_volumes as vol
from fastseg._inference import Handover, fcn, rescale, segment_array
from fastseg._inference.dispatch import check_volume_scale
from fastseg._inference.scan import has_affine, segment_scan, side_map
from fastseg._inference.volume import check_fits_network, network_cutter
from fastseg._row_blocks import row_blocks
from fastseg.data import PatchSampler, VolumePatchSampler, preprocess
from fastseg.data.preprocess import CHANNELS, check_channels
from fastseg.data.volume_sampler import BRAIN_NEGATIVES
from fastseg.errors import InvalidValueError

__all__ = ["Segmenter"]

_OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "rprop": optim.Rprop}
#: With ``whole_brain=None``, training volumes whose structure takes less than this share
#: of their voxels are whole brains (both hippocampi: 0.13 % of a 1 mm brain; a crop
#: around one: 5-10 %).
WHOLE_BRAIN_SHARE = 0.01
#: Format version of the segmenter settings stored inside a model file: 2 adds the volume
#: settings (kind, axis, slices, normalize, keep_largest, a threshold chosen by "auto");
#: 3 the training voxel size (spacing), whole-brain models, the robust normalisation and
#: the volume augmentation; 4 the sharpness augmentation, a volume model's augmentation
#: recorded as its options. Earlier files load as they were (1 mm, z-score, no search,
#: no sharpness).
_SETTINGS_VERSION = 4


class _EpochBatches:
    """The batches of one epoch of a sampler, by epoch number (exact resume needs this)."""

    def __init__(self, sampler, epoch):
        self.sampler, self.epoch = sampler, epoch

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for b in range(len(self.sampler)):
            yield self.sampler.batch(self.epoch, b)


class Segmenter:
    """A segmenter of photos or volumes: network + patch size + kind + preprocessing,
    with a scikit-learn API.

    It segments 2-D photos (``kind="image"``: the vessels of fundus photographs) or 3-D
    scans (``kind`` one of the report's four network kinds: the hippocampus in MRI).

    Parameters
    ----------
    model : str
        A patch classifier of :mod:`fastseg.models`: ``"lai2d"`` or
        ``"lai_stacked2d"`` (images, or the 2d and stacked2d volume kinds),
        ``"lai_triplanar"`` or ``"lai3d"`` (volumes of their own kind).
    patch_size : int
        Side K of the patches (24 in Lai's report).
    channels : {"green", "grey", "rgb"}
        Images: the network input made by :func:`fastseg.data.preprocess`: one
        channel (green or luma) or three (rgb). Volumes have one channel per plane.
    epochs : int
    batch_size : int
    lr : float
        Learning rate.
    optimizer : {"sgd", "adam", "rprop"}
    momentum : float
        SGD momentum (ignored by the others).
    seed : int
        Seeds weight initialisation and the patch sampler.
    batches_per_epoch : int, optional
        None: enough batches to visit every vessel pixel about once per epoch.
    positive_fraction : float
        Share of vessel patches per batch (0.5: balanced).
    augment : bool or dict
        Images: random flips/rotations of the training patches. Volumes: what differs
        between scanners (:class:`fastseg.data.Augment`: sharpness, bias field, gamma,
        noise, small rotations and scalings of each patch); True its defaults, False
        none, a dict its options (``Augment(...).config()``). Recorded in the model
        file as the options it trained with.
    model_kwargs : dict, optional
        Extra arguments for the model builder (e.g. ``{"hidden": 256}``).
    threshold : float or "auto"
        Probability from which :meth:`predict` calls a pixel vessel (a voxel
        structure). ``"auto"`` (volumes): after training, one of
        ``_segmenter_volumes.AUTO_THRESHOLDS`` (0.05 to 0.99) chosen on the training
        volumes, post-processing included (``threshold_``): of those within 0.005 of
        the best mean Dice, the one with the smallest worst volume error (per side
        for whole brains). Balanced batches make the raw network over-segment at 0.5.
    prior_correction : bool
        Undo the class balance of the training batches in :meth:`predict_proba`.
        A network trained on batches with a vessel share ``positive_fraction``
        estimates P(vessel) for that share, not for the vessel share ``pi`` of
        real images (about 12 %); Bayes' rule with the ratio of the priors
        (Saerens et al., 2002) maps ``p`` to ``p*a / (p*a + (1-p)*b)`` with
        ``a = pi/positive_fraction``, ``b = (1-pi)/(1-positive_fraction)``.
        Without it a balanced network calls far too many pixels vessel at 0.5.
    kind : {None, "image", "2d", "stacked2d", "triplanar", "3d"}
        What to segment: 2-D photos, or volumes cut by the kind's patch cutter
        (:func:`fastseg.data.make_cutter`). None: ``"triplanar"`` for lai_triplanar,
        ``"3d"`` for lai3d, else ``"image"``.
    axis : {0, 1, 2}
        Volumes, 2d and stacked2d kinds: the axis the patches' planes are normal to.
    slices : int
        Volumes, stacked2d kind: neighbouring planes stacked as channels (3).
    normalize : {"robust", "zscore", False} or bool
        Volumes: how each scan's intensities are brought to a common scale before
        training and segmenting (MRI intensities have no absolute scale). ``"robust"``
        (default): percentiles of the brain (:func:`fastseg.data.normalize_brain`);
        ``"zscore"`` or True: mean and deviation of the non-zero voxels
        (:func:`fastseg.data.normalize_volume`, older models); False: none.
    spacing : sequence of 3 floats
        Volumes: the voxel size (mm) the network works at. Scans with an affine (NIfTI
        images, or arrays with ``affines=``/``affine=``) are conformed to it -- RAS+
        axis order, this voxel size (:func:`fastseg.data.conform`) -- before training
        and segmenting, and maps come back onto each scan's own grid.
    whole_brain : bool, optional
        Volumes: the training scans are whole brains (not crops around the structure).
        A whole-brain model samples informative negatives in training (near the
        structure and look-alike tissue: ``fastseg.data.BRAIN_NEGATIVES``) and, when
        segmenting, finds each hippocampus on a coarse grid and segments boxes around
        them exactly (:mod:`fastseg._inference.brain`), keeping the largest component
        per hemisphere. None: decided by :meth:`fit` from the data (the structure under
        :data:`WHOLE_BRAIN_SHARE` of the voxels); see ``whole_brain_``.
    keep_largest : int, optional
        Volumes: :meth:`predict` keeps this many largest connected components of the
        mask (1 where one structure per scan is known to be there, as in a crop
        around one hippocampus); None keeps every voxel.

    Attributes
    ----------
    model_ : fastseg.nn.Module
        The trained network (after :meth:`fit` or :meth:`load`).
    history_ : dict
        What :func:`fastseg.train.fit` returned.
    class_prior_ : float
        Vessel share of the training FOVs, used by `prior_correction`.
    fov_diameter_ : float or None
        Median FOV diameter (pixels) of the training images (their FOVs, or FOVs
        estimated from the photos where none was given); :meth:`predict_proba`
        scales photos so that their FOV matches it. Also ``model_.fov_diameter``,
        and kept in the model file.
    threshold_ : float or None
        The threshold chosen by ``threshold="auto"`` (None otherwise); see
        :meth:`decision_threshold`.
    cutter_ : fastseg.data.PatchCutter or None
        Volumes: the patch cutter of the kind (also ``model_.cutter``, kept in the
        model file, so that :func:`fastseg.segment` on the bare network knows it).
    whole_brain_ : bool
        Volumes: whether the model segments whole brains (`whole_brain`, or what
        :meth:`fit` decided); kept in the model file.
    """

    def __init__(self, model="lai2d", patch_size=24, channels="green", epochs=5, batch_size=128,
                 lr=0.01, optimizer="sgd", momentum=0.9, seed=0, batches_per_epoch=None,
                 positive_fraction=0.5, augment=True, model_kwargs=None, threshold=0.5,
                 prior_correction=True, kind=None, axis=0, slices=3, normalize="robust",
                 keep_largest=None, spacing=(1.0, 1.0, 1.0), whole_brain=None):
        self.model = model
        self.patch_size = patch_size
        self.channels = channels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.momentum = momentum
        self.seed = seed
        self.batches_per_epoch = batches_per_epoch
        self.positive_fraction = positive_fraction
        self.augment = augment
        self.model_kwargs = model_kwargs
        self.threshold = threshold
        self.prior_correction = prior_correction
        self.kind = kind
        self.axis = axis
        self.slices = slices
        self.normalize = normalize
        self.keep_largest = keep_largest
        self.spacing = spacing
        self.whole_brain = whole_brain

    # ---- scikit-learn protocol ----------------------------------------------------------

    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        """The constructor arguments, as a dict (``deep`` is accepted for sklearn)."""
        return {name: copy.deepcopy(getattr(self, name)) if deep else getattr(self, name)
                for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments; unknown names are a ``ValueError``. Returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidValueError(f"Segmenter.set_params: unknown parameter {name!r}; valid: "
                                        f"{valid}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params(deep=False).items()
                   if defaults[k].default != v]
        fitted = "" if getattr(self, "model_", None) is None else "  # fitted"
        return f"Segmenter({', '.join(changed)}){fitted}"

    # ---- building --------------------------------------------------------------------------

    def resolved_kind(self) -> str:
        """What this segmenter segments: ``"image"`` or a volume kind."""
        return vol.resolve_kind(self.kind, self.model)

    @property
    def spacing_(self):
        """Volumes: the voxel size (mm) the model works at, as a tuple; None for photos."""
        return None if self.resolved_kind() == "image" else vol.check_spacing(self.spacing)

    def kind_cutter(self):
        """The patch cutter of this segmenter's volume kind, with its options."""
        return vol.kind_cutter(self.resolved_kind(), self.patch_size, self.axis, self.slices)

    def _check(self):
        kind = self.resolved_kind()
        vol.check_threshold(self.threshold, kind)
        if kind != "image":
            self.kind_cutter()  # axis, slices
            if self.keep_largest is not None:
                _validate.as_int("keep_largest", self.keep_largest, minimum=1)
            vol.normalization(self.normalize)
            vol.check_spacing(self.spacing)
            vol.volume_augment(self.augment)
            if self.whole_brain not in (None, True, False):
                raise InvalidValueError(f"whole_brain: expected None, True or False, got "
                                        f"{self.whole_brain!r}")
        check_channels(self.channels)
        if str(self.optimizer).lower() not in _OPTIMIZERS:
            raise InvalidValueError(f"optimizer: expected one of {sorted(_OPTIMIZERS)}, got "
                                    f"{self.optimizer!r}")
        for name in ("patch_size", "epochs", "batch_size"):
            _validate.as_int(name, getattr(self, name), minimum=1)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InvalidValueError(f"lr: expected a positive number, got {self.lr!r}")

    def _build(self):
        kwargs = dict(self.model_kwargs or {})
        kind = self.resolved_kind()
        channels = CHANNELS[self.channels] if kind == "image" else \
            self.kind_cutter().in_channels
        kwargs.setdefault("in_channels", channels)
        kwargs.setdefault("patch_size", int(self.patch_size))
        net = models.get(self.model, **kwargs)
        if kind != "image":
            check_fits_network(net, self.kind_cutter(), "Segmenter.fit")
        return net

    def _optimizer(self, params):
        name = str(self.optimizer).lower()
        if name == "sgd":
            return optim.SGD(params, lr=self.lr, momentum=self.momentum)
        return _OPTIMIZERS[name](params, lr=self.lr)

    def _input(self, image, fov):
        return preprocess(image, fov, self.channels)

    # ---- fitting and predicting ----------------------------------------------------------

    def fit(self, images, masks, fovs=None, *, affines=None, callbacks=(), checkpoint=None,
            resume=None, progress=True, diagnostics=None, pretrain=None, teacher=None):
        """Train a fresh network on patches of the given images.

        Parameters
        ----------
        images : sequence of array_like
            (H, W, 3) RGB or (H, W) greyscale images (uint8 or float).
        masks : sequence of array_like of bool
            Vessel masks, one per image.
        fovs : sequence of array_like, optional
            Fields of view, each read as every FOV in fastseg is
            (:func:`fastseg._validate.as_fov`: non-zero inside, None the whole image).
        affines : sequence of array_like (4, 4), optional
            Volumes: each scan's voxel-to-world matrix; the scans and their masks are
            then conformed to `spacing` (RAS+ order) before training. None: they are
            taken as already in that orientation and voxel size.
        callbacks, checkpoint, resume, progress, diagnostics
            Passed to :func:`fastseg.train.fit`; callbacks get ``(epoch, model,
            history)``.
        pretrain : callable ``(net, sampler) -> None``, optional
            Called on the freshly initialised network before supervised training
            (not on resume), e.g. to run :func:`fastseg.pretrain.layerwise` on
            patches of ``sampler`` (the :class:`~fastseg.data.PatchSampler` of the
            training data); training then starts from the weights it leaves.
        teacher : fastseg.nn.Module, optional
            Train on this network's logits instead of the labels
            (:func:`fastseg.train.mimic`); it must take the same patches.

        Returns
        -------
        self
        """
        self._check()
        images, masks = list(images), list(masks)
        fovs = [None] * len(images) if fovs is None else list(fovs)
        if not images or len(masks) != len(images) or len(fovs) != len(images):
            raise InvalidValueError(f"fit: need as many masks and fovs as images (got "
                                    f"{len(images)} "
                                    f"images, {len(masks)} masks, {len(fovs)} fovs), at least one")
        if self.resolved_kind() == "image":
            if affines is not None:
                raise InvalidValueError("affines: photos have none; they are for volumes")
            sampler = self._image_sampler(images, masks, fovs)
        else:
            if affines is not None:
                images, masks = vol.conformed_samples(images, masks, list(affines),
                                                      vol.check_spacing(self.spacing))
            sampler = self._volume_sampler(images, masks, fovs)
        _random.seed(self.seed)
        net = self._build()
        if pretrain is not None and resume is None:
            pretrain(net, sampler)
        if backends.get_backend() == "cuda":
            net.to("cuda")  # weights, gradients and optimizer state stay on the GPU
        opt = self._optimizer(net.parameters())
        batches = lambda epoch: _EpochBatches(sampler, epoch)  # noqa: E731
        options = {"callbacks": list(callbacks), "checkpoint": checkpoint, "resume": resume,
                   "progress": progress, "diagnostics": diagnostics}
        if teacher is None:
            self.history_ = train.fit(net, batches, nn.CrossEntropyLoss(), opt,
                                      epochs=int(self.epochs), **options)
        else:
            self.history_ = train.mimic(teacher, net, batches, opt, epochs=int(self.epochs),
                                        **options)
        # Back to the host, so that the fitted model runs on any backend.
        self.model_ = net.to("cpu").eval()
        if self.fov_diameter_ is not None:
            self.model_.fov_diameter = self.fov_diameter_
        if self.cutter_ is not None:
            self.model_.cutter = self.cutter_
        self.threshold_ = None
        if self.threshold == "auto":
            truths = [np.asarray(m) != 0 for m in masks]
            if self.whole_brain_:
                # As predict_labels labels: the largest component on each side, and the
                # truth split at the same midline, for the volume of each side.
                scans = [self._scan(self.model_, image, None, None, False, "auto", None, None)
                         for image in images]
                probs = [(self._calibrate_own(s.prob), side_map(s)) for s in scans]
                truths = [np.where(m, ps[1], 0) for m, ps in zip(truths, probs, strict=True)]
                to_labels = lambda ps, t: postprocess.side_labels(ps[0] >= t, ps[1], 1)  # noqa: E731
            else:
                probs = [self.predict_proba(image, progress=False) for image in images]
                to_labels = self.mask_from
            self.threshold_ = vol.choose_threshold(probs, truths, to_labels)
        return self

    def _image_sampler(self, images, masks, fovs):
        """The photos' patch sampler; sets the class prior and the FOV diameter."""
        samples = [SimpleNamespace(image=np.asarray(image), mask=np.asarray(mask, bool),
                                   fov=_validate.as_fov(fov, np.shape(image)[:2],
                                                        name=f"fovs[{i}]"))
                   for i, (image, mask, fov) in enumerate(zip(images, masks, fovs, strict=True))]
        sampler = PatchSampler(samples, size=int(self.patch_size), batch_size=self.batch_size,
                               channels=self.channels, positive_fraction=self.positive_fraction,
                               augment=self.augment, seed=self.seed,
                               batches_per_epoch=self.batches_per_epoch)
        vessel = fov_pixels = 0
        for smp in samples:
            vessel += int((smp.mask & smp.fov).sum())
            fov_pixels += int(smp.fov.sum())
        self.class_prior_ = vessel / max(fov_pixels, 1)
        # FOVs not given are estimated from the photos, as predict_proba does.
        diameters = [rescale.fov_diameter(rescale.estimate_fov(smp.image) if fov is None
                                           else smp.fov)
                     for smp, fov in zip(samples, fovs, strict=True)]
        diameters = [d for d in diameters if d is not None]
        self.fov_diameter_ = float(np.median(diameters)) if diameters else None
        self.cutter_ = None
        return sampler

    def _volume_sampler(self, images, masks, fovs):
        """The volumes' voxel sampler (the kind's cutter); sets the class prior."""
        samples = vol.volume_samples(images, masks, fovs)
        self.cutter_ = self.kind_cutter()
        self.class_prior_ = vol.structure_share(samples)
        self.whole_brain_ = bool(self.class_prior_ < WHOLE_BRAIN_SHARE) \
            if self.whole_brain is None else bool(self.whole_brain)
        negatives = BRAIN_NEGATIVES if self.whole_brain_ else {}
        method = vol.normalization(self.normalize)
        sampler = VolumePatchSampler(samples, self.cutter_, batch_size=self.batch_size,
                                     positive_fraction=self.positive_fraction,
                                     normalize=method or False, seed=self.seed,
                                     batches_per_epoch=self.batches_per_epoch,
                                     augment=vol.volume_augment(self.augment), **negatives)
        self.fov_diameter_ = None
        return sampler

    def _fitted(self):
        net = getattr(self, "model_", None)
        if net is None:
            raise RuntimeError("Segmenter: not fitted yet; call fit() or Segmenter.load()")
        return net

    def _prior_ratios(self):
        """``(a, b)`` of the prior correction, or None where it does not apply."""
        prior = getattr(self, "class_prior_", None)
        share = self.positive_fraction
        if not self.prior_correction or prior is None or share is None or not 0 < share < 1:
            return None  # trained at the natural class ratio, or the prior is unknown
        if getattr(self, "whole_brain_", False):
            # A whole brain's share (0.13 %) is not the prior of the voxels segmented:
            # the search keeps only the boxes around each hippocampus.
            return None
        return prior / share, (1 - prior) / (1 - share)

    def calibrate(self, prob):
        """Apply the prior correction (see `prior_correction`) to raw network probabilities.

        Returns a new float32 array (`prob` itself where no correction applies); `prob`
        is left as it was.
        """
        if self._prior_ratios() is None:
            return prob
        return self._calibrate_own(np.array(prob, dtype=np.float32))

    def _calibrate_own(self, prob):
        """:meth:`calibrate` in place on `prob`, a float32 array of our own (a
        probability map :meth:`predict_proba` just made): no image-sized temporary."""
        ratios = self._prior_ratios()
        if ratios is None:
            return prob
        if not (prob.dtype == np.float32 and prob.flags.c_contiguous and prob.flags.writeable):
            prob = np.array(prob, dtype=np.float32)
        a, b = ratios
        flat = prob.reshape(-1)  # a view: prob is C-contiguous
        for rows in row_blocks(flat.size, prob.itemsize):
            p = flat[rows]
            p[...] = p * a / np.maximum(p * a + (1 - p) * b, 1e-30)
        return prob

    def predict_proba(self, image, fov=None, *, tile=None, progress=None, method="auto",
                      scale=None, affine=None):
        """Vessel probability (H, W) float32 of every pixel (0 outside `fov`, read as
        :func:`fastseg._validate.as_fov` reads every FOV); for a volume kind the
        structure probability of every voxel of a scan, on the scan's own grid.

        `method` and `tile` are :func:`fastseg.segment`'s. `scale`: None (default)
        resamples the photo so that its FOV diameter (of `fov`, or of a FOV
        estimated from the photo) matches :attr:`fov_diameter_`, and the
        probabilities back to the photo's size; a number scales by it; 1 is off.

        Volumes: `image` is a scan with its affine (a NIfTI image from nibabel, a
        :class:`fastseg.data.Volume`, or a (D, H, W) array with ``affine=``), which is
        conformed to the model's grid (RAS+ order, `spacing`), normalised as the
        training scans were, segmented (a whole-brain model looks for each hippocampus
        first: :mod:`fastseg._inference.brain`), and its map brought back onto the
        scan's grid (interpolated); or a bare (D, H, W) array, taken as already on the
        model's grid. `scale` must be None or 1. Where the map is computed, each voxel
        gets what the network gives for the patch its kind's cutter cuts there on the
        conformed grid (before calibration).
        """
        net = self._fitted()
        if self.resolved_kind() != "image":
            return self._volume_proba(net, image, fov, tile, progress, method, scale, affine)
        if affine is not None:
            raise InvalidValueError("affine: photos have none; it is for volumes")
        factor = rescale.check_scale(scale)
        if factor is None:
            measured = rescale.estimate_fov(image) if fov is None else \
                _validate.as_fov(fov, np.shape(image)[:2])
            factor = rescale.auto_scale(getattr(net, "fov_diameter", None), measured)
        prob = segment_array(net, Handover(self._input(image, fov)), fov, int(self.patch_size),
                             tile, progress, method, factor, "Segmenter.predict_proba")
        return self._calibrate_own(prob)

    #: Raw probability from which the whole-brain search takes a grid voxel as a
    #: candidate: the balanced training batches' own boundary, whatever the decision
    #: threshold (which is chosen on, and applied to, the exact maps in the boxes).
    SEARCH_THRESHOLD = 0.5

    def _scan(self, net, volume, fov, tile, progress, method, scale, affine):
        """The volume path of :meth:`predict_proba`: a ScanResult (raw probabilities)."""
        check_volume_scale(scale)
        if affine is None and not has_affine(volume) and np.ndim(volume) != 3:
            raise InvalidValueError(f"volume: this segmenter ({self.resolved_kind()} kind) "
                                    f"segments (D, H, W) volumes, got shape {np.shape(volume)}")
        cutter = getattr(net, "cutter", None) or self.kind_cutter()
        return segment_scan(net, volume, cutter, affine=affine,
                            spacing=vol.check_spacing(self.spacing),
                            normalize=vol.normalization(self.normalize),
                            whole_brain=bool(getattr(self, "whole_brain_", False)),
                            threshold=self.SEARCH_THRESHOLD, fov=fov, tile=tile,
                            progress=progress, method=method, caller="Segmenter.predict_proba")

    def _volume_proba(self, net, volume, fov, tile, progress, method, scale, affine=None):
        result = self._scan(net, volume, fov, tile, progress, method, scale, affine)
        return self._calibrate_own(result.prob)

    def predict_maps(self, volume, fov=None, threshold=None, *, affine=None, tile=None,
                     progress=None, method="auto", scale=None):
        """The probability map and the hippocampus label map of a scan, from one
        segmentation: ``(prob, labels)`` on the scan's own grid.

        `prob` is :meth:`predict_proba`'s; `labels` (uint8) is 1 left, 2 right, 0
        elsewhere: the voxels at or above the threshold (:meth:`decision_threshold`) of
        the probabilities brought back onto the scan's grid, split by side, keeping the
        largest component per side (whole-brain models; else `keep_largest` per side
        when set). The side is the hemisphere for whole brains (the brain's midline on
        the conformed grid's left-right axis) and the sign of the world ``x`` for a
        crop (negative: left, as in MNI space); without an affine, a crop is all 1.
        """
        net = self._fitted()
        if self.resolved_kind() == "image":
            raise InvalidValueError("predict_labels: this segmenter segments photos; label "
                                    "maps of sides are for volumes")
        result = self._scan(net, volume, fov, tile, progress, method, scale, affine)
        prob = self._calibrate_own(result.prob)
        t = self.decision_threshold() if threshold is None else \
            _validate.as_real("threshold", threshold, 0, 1)
        keep = 1 if getattr(self, "whole_brain_", False) else self.keep_largest
        return prob, postprocess.side_labels(prob >= t, side_map(result), keep)

    def predict_labels(self, volume, fov=None, threshold=None, **kwargs):
        """A hippocampus label map of a scan: 1 left, 2 right, 0 elsewhere (uint8), on
        the scan's own grid; see :meth:`predict_maps`."""
        return self.predict_maps(volume, fov, threshold, **kwargs)[1]

    def decision_threshold(self) -> float:
        """The threshold :meth:`predict` applies: `threshold`, or the one ``"auto"`` chose."""
        if self.threshold != "auto":
            return float(self.threshold)
        if getattr(self, "threshold_", None) is None:
            raise RuntimeError("Segmenter: threshold='auto' is chosen by fit(); fit first")
        return float(self.threshold_)

    def mask_from(self, prob, threshold=None, fov=None):
        """The mask :meth:`predict` makes of a probability map: ``prob >= threshold``
        (default :meth:`decision_threshold`) inside `fov`, then for volumes the
        `keep_largest` largest connected components."""
        t = self.decision_threshold() if threshold is None else threshold
        mask = np.asarray(prob) >= t
        if fov is not None:
            mask &= _validate.as_fov(fov, mask.shape)
        if self.resolved_kind() != "image" and self.keep_largest is not None:
            mask = postprocess.largest_components(mask, self.keep_largest)
        return mask

    def predict(self, image, fov=None, threshold=None, **kwargs):
        """Binary mask (H, W) or (D, H, W): :meth:`mask_from` of :meth:`predict_proba`; for
        a whole-brain model, both hippocampi of :meth:`predict_labels`."""
        if getattr(self, "whole_brain_", False):
            return self.predict_labels(image, fov, threshold, **kwargs) > 0
        return self.mask_from(self.predict_proba(image, fov, **kwargs), threshold, fov)

    # ---- files --------------------------------------------------------------------------

    def save(self, path):
        """Save the network and these settings to one pickle-free model file.

        The file is an ordinary :func:`fastseg.save` model file (``fastseg.load``
        reads the network from it) whose header also holds the settings.
        """
        net = self._fitted()
        meta = io.model_meta(net)
        params = self.get_params()
        if self.resolved_kind() != "image":  # what was on, not a default that may change
            augment = vol.volume_augment(params["augment"])
            params["augment"] = augment.config() if augment is not None else False
        elif not isinstance(params["augment"], (bool, dict)):  # an Augment: its options
            params["augment"] = params["augment"].config()
        params["spacing"] = list(vol.check_spacing(params["spacing"]))
        meta["segmenter"] = {"version": _SETTINGS_VERSION,
                             "params": params,
                             "class_prior": getattr(self, "class_prior_", None),
                             "chosen_threshold": getattr(self, "threshold_", None),
                             "whole_brain": bool(getattr(self, "whole_brain_", False)),
                             "training_data": getattr(self, "training_data_", None),
                             "history": {k: v for k, v in getattr(self, "history_", {}).items()
                                         if k != "step_loss"}}
        io.save_arrays(path, net.state_dict(), meta, format=io.MODEL_FORMAT,
                       version=io.MODEL_VERSION)

    @classmethod
    def load(cls, path):
        """Load a segmenter saved by :meth:`save`.

        A plain model file (from :func:`fastseg.save`) is accepted too: the kind is
        the cutter the file records (or tri-planar, 3-D from the network), the patch
        size is inferred from the network and an image network's channels from its
        input (1: green, 3: rgb). Files of every earlier settings version load.

        Raises
        ------
        FileNotFoundError, ValueError
            A missing, foreign, damaged or too new file (named in the message).
        """
        header, arrays = io.load_arrays(path, format=io.MODEL_FORMAT,
                                        max_version=io.MODEL_VERSION)
        meta = header.get("meta")
        try:
            if not isinstance(meta, dict) or "architecture" not in meta:
                raise InvalidValueError("no architecture in the header")
            net = io.build(meta["architecture"])
            net.load_state_dict(arrays)
            io.apply_model_meta(net, meta)
        except ValueError as exc:
            raise InvalidValueError(f"cannot load {os.fspath(path)!r}: {exc}") from None
        net.eval()
        info = meta.get("segmenter")
        cutter = network_cutter(net, caller="Segmenter.load")
        if info is None and cutter is not None:
            # A bare network file: the z-score of the files made before the robust one.
            self = cls(**vol.settings_of(cutter), normalize="zscore")
        elif info is None:
            size = fcn.infer_patch_size(net, "Segmenter.load")
            in_channels = fcn.plan(net, size, "Segmenter.load").in_channels
            self = cls(patch_size=size, channels="rgb" if in_channels == 3 else "green")
        else:
            if not isinstance(info, dict) or info.get("version", 0) > _SETTINGS_VERSION:
                raise InvalidValueError(f"cannot load {os.fspath(path)!r}: segmenter settings of "
                                        f"an unknown version; upgrade fastseg")
            valid = cls._param_names()
            params = {k: v for k, v in (info.get("params") or {}).items() if k in valid}
            if info.get("version", 0) < 4 and cutter is not None:
                params["augment"] = vol.augment_before_sharpness(params.get("augment", True))
            self = cls(**params)
            self.history_ = info.get("history") or {}
            prior = info.get("class_prior")
            self.class_prior_ = float(prior) if isinstance(prior, (int, float)) else None
            chosen = info.get("chosen_threshold")
            self.threshold_ = float(chosen) if isinstance(chosen, (int, float)) else None
            self.whole_brain_ = info.get("whole_brain") is True  # older files: crops
            data = info.get("training_data")
            self.training_data_ = data if isinstance(data, str) else None
            if isinstance(self.spacing, list):
                self.spacing = tuple(self.spacing)
            self._check()
        self.model_ = net
        self.fov_diameter_ = getattr(net, "fov_diameter", None)
        self.cutter_ = cutter
        if cutter is not None:
            net.cutter = cutter
        return self
