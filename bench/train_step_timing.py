"""Time one lai2d training step (forward + loss + backward + SGD step) against PyTorch CPU.

Batch 128 of 24x24 patches, 2 threads on both sides by default. The two steps
are timed alternately in one process (so both see the same machine state) and
the medians are reported.

Usage::

    python bench/train_step_timing.py [--backend c] [--threads 2] [--batch 128] [--repeats 9]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main(argv=None) -> None:
    import fastseg
    from fastseg import models, nn, optim

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    available = fastseg.available_backends()
    parser.add_argument("--backend", default="c" if "c" in available else "numpy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    fastseg.set_backend(args.backend)
    try:
        fastseg.set_num_threads(args.threads)
    except ImportError:  # the compiled runtime is absent: only the numpy backend runs
        pass
    torch.set_num_threads(args.threads)

    fastseg.seed(0)
    net = models.lai2d()
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.ReLU(), torch.nn.Conv2d(20, 50, 5), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(12800, 1000), torch.nn.Tanh(),
        torch.nn.Linear(1000, 2))
    tnet.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.01, momentum=0.9, foreach=False)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 24, 24)).astype(np.float32)
    y = rng.integers(0, 2, args.batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def ours():
        opt.zero_grad()
        loss_fn(net(x), y)
        net.backward(loss_fn.backward())
        opt.step()

    def theirs():
        topt.zero_grad()
        tloss_fn(tnet(tx), ty).backward()
        topt.step()

    times = {"fastseg": [], "torch": []}
    # The numpy backend's BLAS gets the same thread budget as the others.
    with threadpool_limits(args.threads):
        for _ in range(2):  # warm-up: first-touch allocations, caches, thread pools
            ours()
            theirs()
        for _ in range(args.repeats):
            for name, step in (("fastseg", ours), ("torch", theirs)):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"lai2d train step, batch {args.batch}, {args.threads} threads, "
          f"{args.repeats} alternating repeats (median)")
    print(f"  fastseg[{args.backend}]: {med['fastseg']:8.1f} ms "
          f"({args.batch / med['fastseg'] * 1e3:7.0f} patches/s)")
    print(f"  torch {torch.__version__}: {med['torch']:8.1f} ms "
          f"({args.batch / med['torch'] * 1e3:7.0f} patches/s)")
    print(f"  ratio fastseg/torch: {med['fastseg'] / med['torch']:.2f}")


if __name__ == "__main__":
    main()
