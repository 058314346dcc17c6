"""Whole-network benchmark cases: a training step and a dense segmentation.

The PyTorch side is the same network built from the same weights
(:func:`to_torch`), so both sides do the same arithmetic; so are the ONNX Runtime and
OpenVINO sides of the segmentation (fastseg's own ONNX export, :mod:`.engines`).
"""
from __future__ import annotations

import numpy as np

import fastseg
from fastseg import models, nn, optim
from fastseg.benchmarks import engines
from fastseg.benchmarks.case import ENGINES, Case, Runner, rand, torch_module
from fastseg.nn.module import backward_params


def to_torch(model: nn.Sequential):
    """The PyTorch twin of a fastseg ``Sequential`` (same layers, same weights)."""
    torch = torch_module()
    tnn = torch.nn
    layers = []
    for m in model:
        if isinstance(m, nn.Conv2d):
            layers.append(tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                     stride=m.stride, padding=m.padding,
                                     bias=m.bias is not None))
        elif isinstance(m, nn.Linear):
            layers.append(tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
        elif isinstance(m, nn.MaxPool2d):
            layers.append(tnn.MaxPool2d(m.kernel_size, m.stride))
        elif isinstance(m, nn.Conv3d):
            layers.append(tnn.Conv3d(m.in_channels, m.out_channels, m.kernel_size,
                                     stride=m.stride, padding=m.padding,
                                     bias=m.bias is not None))
        elif isinstance(m, nn.MaxPool3d):
            layers.append(tnn.MaxPool3d(m.kernel_size, m.stride))
        elif isinstance(m, nn.PixelLogits):
            k, hw = m.num_classes, m.height * m.width
            layers.append(_Lambda(lambda y, k=k, hw=hw: y.reshape(-1, k, hw)
                                  .transpose(1, 2).reshape(-1, k)))
        else:
            simple = {nn.ReLU: tnn.ReLU, nn.Tanh: tnn.Tanh, nn.Sigmoid: tnn.Sigmoid,
                      nn.Flatten: tnn.Flatten}
            layers.append(simple[type(m)]())
    twin = tnn.Sequential(*layers)
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()})
    return twin


def _Lambda(fn):
    torch = torch_module()

    class Lambda(torch.nn.Module):
        def forward(self, y):
            return fn(y)

    return Lambda()


def _on(backend: str, run: Runner) -> Runner:
    """`run` with `backend` made current at each call: cases run interleaved."""
    def wrapped():
        before = fastseg.get_backend()
        fastseg.set_backend(backend)
        try:
            return run()
        finally:
            fastseg.set_backend(before)

    return wrapped


def _train_step_case(name, build, x_shape, labels_per_sample) -> Case:
    def prepare(backend: str) -> Runner:
        rng = np.random.default_rng(0)
        fastseg.seed(0)  # the same weights for every backend
        model = build()
        x = rand(rng, *x_shape)
        y = rng.integers(0, 2, size=x_shape[0] * labels_per_sample)
        if backend == "torch":
            torch = torch_module()
            twin = to_torch(model)
            topt = torch.optim.SGD(twin.parameters(), lr=1e-3, momentum=0.9)
            tx, ty = torch.from_numpy(x), torch.from_numpy(y)
            lossf = torch.nn.CrossEntropyLoss()

            def torch_step():
                topt.zero_grad()
                lossf(twin(tx), ty).backward()
                topt.step()

            return torch_step
        opt = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        lossf = nn.CrossEntropyLoss()

        def step():  # fit's step (fastseg.train)
            opt.zero_grad()
            lossf(model(x), y)
            backward_params(model, lossf.backward())
            opt.step()

        return _on(backend, step)

    return Case("train-step", name, _train_flops(build(), x_shape), prepare)


def _train_flops(model, x_shape) -> float:
    """Multiply-adds of conv and linear layers, x2 for FLOPs, x3 for fwd + bwd."""
    if len(x_shape) == 5:
        return _train_flops3d(model, x_shape)
    n, _, h, w = x_shape
    total = 0.0
    for m in model:
        if isinstance(m, nn.Conv2d):
            h, w = m.output_size(h, w)
            total += n * m.out_channels * h * w * m.in_channels * m.kernel_size**2
        elif isinstance(m, nn.MaxPool2d):
            h, w = m.output_size(h, w)
        elif isinstance(m, nn.Linear):
            total += n * m.in_features * m.out_features
    return 6.0 * total


def _train_flops3d(model, x_shape) -> float:
    n, size = x_shape[0], tuple(x_shape[2:])
    total = 0.0
    for m in model:
        if isinstance(m, nn.Conv3d):
            size = m.output_size(*size)
            total += n * m.out_channels * np.prod(size) * m.in_channels * np.prod(m.kernel_size)
        elif isinstance(m, nn.MaxPool3d):
            size = m.output_size(*size)
        elif isinstance(m, nn.Linear):
            total += n * m.in_features * m.out_features
    return 6.0 * float(total)


def _segment_case(shape, patch, method="direct") -> Case:
    """Dense lai2d over one image: fastseg with `method` (the FFT path is "auto": the
    16x16 layer by FFT); PyTorch always runs the direct fully convolutional form, ONNX
    Runtime and OpenVINO fastseg's dense ONNX export of the same network (the à trous
    form, the same arithmetic for lai2d, which has no pooling) on the whole image.
    The flops are the direct form's, so GFLOP/s of the FFT path are equivalent ones."""
    h, w = shape
    conv = 2 * 20 * 25 + 2 * 50 * 20 * 25
    fc = 2 * 50 * (patch - 8) ** 2 * 1000 + 2 * 1000 * 2

    def prepare(backend: str) -> Runner:
        from fastseg.segment import segment

        fastseg.seed(0)
        model = models.lai2d(patch_size=patch)
        model.eval()
        image = rand(np.random.default_rng(0), 1, h, w)
        if backend == "torch":
            return _torch_segment(model, image, patch)
        if backend in ENGINES:
            return engines.dense_runner(backend, model, image)
        return _on(backend, lambda: segment(model, image, progress=False, method=method))

    suffix = "" if method == "direct" else f"-{'fft' if method == 'auto' else method}"
    return Case("segment", f"lai2d-{h}x{w}{suffix}", float(h * w * (conv + fc)), prepare,
                engines=ENGINES)


def _torch_segment(model, image, patch, rows=64):
    """The same fully convolutional computation in PyTorch, in row bands."""
    torch = torch_module()
    from fastseg.data import pad_for_patches

    conv1, conv2 = (m for m in model if isinstance(m, nn.Conv2d))
    f = conv2.out_channels
    k = patch - 2 * (conv1.kernel_size - 1)
    t = {name: torch.from_numpy(np.array(a)) for name, a in model.state_dict().items()}
    keys = [name for name in t if name.endswith("weight")]
    w1, w2, w3, w4 = (t[name] for name in keys)
    b1, b2, b3, b4 = (t[name.replace("weight", "bias")] for name in keys)
    w3 = w3.reshape(-1, f, k, k)
    w4 = w4.reshape(w4.shape[0], -1, 1, 1)
    padded = torch.from_numpy(pad_for_patches(image, patch))[None]
    F = torch.nn.functional

    def run():
        out = []
        with torch.no_grad():
            for r in range(0, image.shape[1], rows):
                band = padded[:, :, r: r + rows + patch - 1]
                z = F.relu(F.conv2d(band, w1, b1))
                z = F.relu(F.conv2d(z, w2, b2))
                z = torch.tanh(F.conv2d(z, w3, b3))
                out.append(torch.softmax(F.conv2d(z, w4, b4), dim=1)[0, 1])
        return torch.cat(out)

    return run


def cases(quick: bool) -> list[Case]:
    """The whole-network cases in table order; `quick` shrinks the networks."""
    if quick:
        return [
            _train_step_case("lai2d-small-b4", lambda: models.lai2d(patch_size=12, hidden=16),
                             (4, 1, 12, 12), 1),
            _segment_case((20, 17), 12),
            _segment_case((20, 17), 12, "fft"),
            _train_step_case("lai3d-small-b2",
                             lambda: models.lai3d(patch_size=14, conv_channels=(4, 6), hidden=16),
                             (2, 1, 14, 14, 14), 1),
        ]
    return [
        _train_step_case("lai2d-b128", models.lai2d, (128, 1, 24, 24), 1),
        _train_step_case("lai2d-b1", models.lai2d, (1, 1, 24, 24), 1),
        _train_step_case("seo-whole-image-b2", models.seo_whole_image, (2, 1, 64, 64), 64 * 64),
        _train_step_case("lai3d-b128", models.lai3d, (128, 1, 24, 24, 24), 1),
        _train_step_case("lai3d-b1", models.lai3d, (1, 1, 24, 24, 24), 1),
        _segment_case((584, 565), 24),
        _segment_case((584, 565), 24, "auto"),
    ]
