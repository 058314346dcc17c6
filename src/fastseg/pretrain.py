"""Greedy layer-wise unsupervised pre-training, the report's first cure for the vanishing
gradient (Hinton et al. 2006; Bengio et al. 2007; as denoising autoencoders, Vincent et al.
2008).

:func:`layerwise` trains each layer with weights in turn, input to output, as a denoising
autoencoder of what the layers below it make of the training patches:

    h = act(layer(corrupt(x)))          the layer and the activation after it: the encoder
    x_hat = layer^T(h) + c              the decoder, with the layer's own (tied) weights
    loss = mean((x_hat - x)**2)         reconstruct the clean input

The decoder of a convolution is the transposed convolution with the same weights: the
path that carries a convolution's input gradient back, here ``ops.col2im(W^T h)`` (the
im2col GEMM's backward: one :func:`fastseg.ops.gemm` and :func:`fastseg.ops.col2im`). Its
own gradients are ``ops.conv2d(dx_hat, W)`` for h and ``ops.conv2d_backward(dx_hat, W, h)``'s
dW for the weights, which the encoder's dW is added to. A linear layer's decoder is
``h @ W``. Only the decoder bias ``c`` is new; it is dropped afterwards.
"""
from __future__ import annotations

import numpy as np

from fastseg import _random, ops, optim
from fastseg import _validate as v
from fastseg.errors import DivergedError, InvalidTypeError, InvalidValueError
from fastseg.nn.activation import Activation
from fastseg.nn.containers import Sequential
from fastseg.nn.layers import Conv2d, Linear
from fastseg.nn.loss import MSELoss
from fastseg.nn.module import Parameter

__all__ = ["layerwise", "unlabelled_patches", "decode", "autoencoder_step"]


def decode(layer, h, x_shape):
    """The tied decoder: `layer`'s transposed map of `h` back to an input of `x_shape`.

    Parameters
    ----------
    layer : fastseg.nn.Conv2d or fastseg.nn.Linear
    h : ndarray
        An output of `layer`: (N, F, OH, OW) for a convolution, (N, O) for a linear layer.
    x_shape : tuple
        The input shape to map back to, (N, C, H, W) or (N, I).

    Returns
    -------
    ndarray of `x_shape`
        ``conv_transpose2d(h, weight, stride, padding)`` (sized to `x_shape`), or ``h @ weight``.
    """
    w = layer.weight.data
    if isinstance(layer, Linear):
        return ops.gemm(h, w)
    n, f, oh, ow = h.shape
    h_cols = np.ascontiguousarray(h.transpose(1, 0, 2, 3)).reshape(f, n * oh * ow)
    cols = ops.gemm(w.reshape(f, -1), h_cols, trans_a=True)
    return ops.col2im(cols, tuple(x_shape), layer.kernel_size, layer.stride, layer.padding)


def _decoder_grads(layer, dx_hat, h):
    """Gradients of <dx_hat, decode(h)> for h and for the (tied) weight."""
    w = layer.weight.data
    if isinstance(layer, Linear):
        return ops.linear(dx_hat, w), ops.gemm(h, dx_hat, trans_a=True)
    dh = ops.conv2d(dx_hat, w, None, layer.stride, layer.padding)
    _, dw, _ = ops.conv2d_backward(dx_hat, w, h, layer.stride, layer.padding, need_dx=False)
    return dh, dw


def autoencoder_step(layer, activation, decoder_bias, x, corrupted, loss_fn=None) -> float:
    """One forward and backward pass of the denoising autoencoder built on `layer`.

    Accumulates into ``.grad`` of the layer's weight (encoder and decoder parts) and
    bias and of `decoder_bias`; returns the reconstruction loss (mean squared error
    of the decoding of `corrupted` against the clean `x`).

    Parameters
    ----------
    layer : fastseg.nn.Conv2d or fastseg.nn.Linear
        In training mode (it keeps its input for backward).
    activation : fastseg.nn.Module or None
        The element-wise activation after the layer (None: none).
    decoder_bias : fastseg.nn.Parameter
        (C,) for a convolution (one per input channel), (I,) for a linear layer.
    x, corrupted : ndarray
        A batch of the layer's input, clean and corrupted.
    """
    loss_fn = MSELoss() if loss_fn is None else loss_fn
    z = layer(corrupted)
    h = activation(z) if activation is not None else z
    c = decoder_bias.data
    bias = c.reshape(1, -1, 1, 1) if isinstance(layer, Conv2d) else c.reshape(1, -1)
    loss = loss_fn(decode(layer, h, x.shape) + bias, x)
    dx_hat = loss_fn.backward()
    decoder_bias.accumulate_grad(dx_hat.sum(axis=(0, 2, 3)) if isinstance(layer, Conv2d)
                                 else dx_hat.sum(axis=0))
    dh, dw = _decoder_grads(layer, dx_hat, h)
    layer.weight.accumulate_grad(dw)
    dz = activation.backward(dh) if activation is not None else dh
    layer.backward(dz, need_dx=False)
    return float(loss)


def _steps(net, layers):
    """(index, layer, activation after it) of the layers to pre-train, and the modules."""
    if not isinstance(net, Sequential):
        raise InvalidTypeError(f"layerwise: expected a fastseg.nn.Sequential, got "
                               f"{type(net).__name__}")
    modules = list(net)
    weighted = [i for i, m in enumerate(modules) if next(iter(m.parameters()), None) is not None]
    for i in weighted:
        if not isinstance(modules[i], (Conv2d, Linear)):
            raise InvalidTypeError(f"layerwise: can pre-train Conv2d and Linear layers only, but "
                                   f"layer {i} is a {type(modules[i]).__name__}")
    if len(weighted) < 2:
        raise InvalidValueError("layerwise: the network needs a hidden layer with weights "
                                "before its output layer")
    hidden = weighted[:-1]  # the output layer learns from the labels only
    count = len(hidden) if layers is None else v.as_int("layers", layers, minimum=1)
    if count > len(hidden):
        raise InvalidValueError(f"layerwise: layers={count}, but the network has only "
                                f"{len(hidden)} hidden layers with weights (the output layer is "
                                "trained on the labels)")
    steps = []
    for i in hidden[:count]:
        after = modules[i + 1] if i + 1 < len(modules) else None
        steps.append((i, modules[i], after if isinstance(after, Activation) else None))
    return steps, modules


def unlabelled_patches(sampler, count: int) -> np.ndarray:
    """`count` training patches of a :class:`~fastseg.data.PatchSampler` (those of its
    first batches), without their labels: the input :func:`layerwise` wants."""
    count = v.as_int("count", count, minimum=1)
    batches = [sampler.batch(0, index)[0] for index in range(-(-count // sampler.batch_size))]
    return np.concatenate(batches)[:count]


def _forward_chunks(modules, x, chunk=512):
    """`x` through `modules` (eval mode), a chunk of samples at a time."""
    out = []
    for start in range(0, len(x), chunk):
        y = x[start:start + chunk]
        for module in modules:
            y = module(y)
        out.append(ops.to_device(y, "cpu"))
    return np.concatenate(out)


def layerwise(net, patches, *, epochs=1, batch_size=64, lr=0.01, momentum=0.9, noise=0.25,
              layers=None, seed=None, history=None, progress=False):
    """Pre-train `net`'s hidden layers, greedily and without labels, as denoising
    autoencoders; returns `net` (changed in place) for supervised fine-tuning.

    Layer by layer from the input, each Conv2d or Linear layer (with the activation
    that follows it, if one does) encodes its input with a fraction `noise` of the
    values set to zero, and a decoder with the same weights (transposed) must give
    back the clean input (see the module docstring). The layers below it are fixed
    by then; what they make of `patches` is the input it learns to encode.

    Parameters
    ----------
    net : fastseg.nn.Sequential
        Its weighted layers must be Conv2d or Linear. The last one (the classifier)
        is not pre-trained.
    patches : array_like
        Unlabelled training inputs, (N, C, H, W) (or (N, I) for a fully connected
        network), as the network takes them.
    epochs : int
        Passes over `patches` per layer.
    batch_size : int
    lr, momentum : float
        SGD's learning rate and momentum for each autoencoder. A layer's rate is `lr`
        divided by the mean square of its input, as normalised least mean squares
        divides its step: a step that suits the unit-variance patches overshoots on the
        ten-times larger outputs of a deep ReLU stack (measured: it killed every unit of
        a 64-unit layer). Not Adam: its steps of about `lr` per weight, all one way,
        add up over a fan-in of thousands and saturated every sigmoid unit of a
        3072-input layer (|pre-activation| ~ 19).
    noise : float in [0, 1)
        Fraction of input values zeroed (masking noise); 0 gives a plain autoencoder.
    layers : int, optional
        Pre-train only the first this many hidden layers (default: all of them).
    seed : int, optional
        Seeds the shuffling and the noise; None draws them from fastseg's generator
        (:func:`fastseg.seed`).
    history : dict, optional
        Filled with ``{"<index>:<class>": [mean reconstruction loss per epoch]}``.
    progress : bool
        A progress bar per layer.

    Returns
    -------
    fastseg.nn.Sequential
        `net`, in training mode.
    """
    steps, modules = _steps(net, layers)
    if any(p.device != "cpu" for p in net.parameters()):
        raise InvalidValueError("layerwise: pre-train on the host, then move the model with "
                                "model.to('cuda')")
    x = v.as_float32("patches", patches)
    if x.ndim < 2 or len(x) == 0:
        raise InvalidValueError(f"patches: expected a non-empty batch (N, ...) of network inputs, "
                                f"got shape {x.shape}")
    v.check_finite("patches", x)
    epochs = v.as_int("epochs", epochs, minimum=1)
    batch_size = v.as_int("batch_size", batch_size, minimum=1)
    if not 0 <= float(noise) < 1:
        raise InvalidValueError(f"noise: expected a fraction in [0, 1), got {noise!r}")
    rng = _random.get_rng() if seed is None else np.random.default_rng(v.as_int("seed", seed, 0))
    from tqdm.auto import tqdm

    net.eval()
    done = 0  # modules[:done] have been applied to x
    try:
        for index, layer, activation in steps:
            x = _forward_chunks(modules[done:index], x) if index > done else x
            done = index
            channels = x.shape[1]
            decoder_bias = Parameter(np.zeros(channels if isinstance(layer, Conv2d)
                                              else x.shape[1], np.float32))
            params = [*layer.parameters(), decoder_bias]
            power = float(np.mean(np.square(x, dtype=np.float64)))
            opt = optim.SGD(params, lr=lr / power if power > 0 else lr, momentum=momentum)
            layer.train()
            if activation is not None:
                activation.train()
            losses = []
            name = f"{index}:{type(layer).__name__}"
            for epoch in range(epochs):
                order = rng.permutation(len(x))
                total, count = 0.0, 0
                starts = range(0, len(x), batch_size)
                for start in tqdm(starts, desc=f"pretrain {name} epoch {epoch + 1}",
                                  leave=False, disable=None if progress else True):
                    clean = x[order[start:start + batch_size]]
                    corrupted = clean * (rng.random(clean.shape) >= noise) if noise else clean
                    opt.zero_grad()
                    loss = autoencoder_step(layer, activation, decoder_bias, clean,
                                            corrupted.astype(np.float32, copy=False))
                    if not np.isfinite(loss):
                        raise DivergedError(f"layerwise: the reconstruction loss of layer "
                                            f"{name} became {loss}: pre-training diverged "
                                            "(a lower learning rate may help)")
                    opt.step()
                    total, count = total + loss * len(clean), count + len(clean)
                losses.append(total / count)
            layer.eval()
            if activation is not None:
                activation.eval()
            if history is not None:
                history[name] = losses
    finally:
        net.train()
    return net
