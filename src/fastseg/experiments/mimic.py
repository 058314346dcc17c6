"""``mimic``: a shallow network trained on labels, against the same trained on lai2d's logits.

Ba & Caruana (2014, "Do deep nets really need to be deep?") trained shallow networks to
reproduce a deep network's logits (squared error) and found them far better than the
same shallow networks trained on the labels. Here the teacher is lai2d trained on the
labels; the student, one hidden layer on the flattened patch, is trained twice from the
same initial weights on the same batches: on the labels (cross-entropy) and on the
teacher's logits (:func:`fastseg.train.mimic`).
"""
from __future__ import annotations

import time

import fastseg
from fastseg import models, nn, optim
from fastseg.experiments._common import Result, make_data, parameter_count, run_training

NAME = "mimic"
TITLE = "Mimic training: a shallow student on labels or on lai2d's logits"

SETTINGS = {
    "default": {"train_images": 6, "test_images": 4, "size": (292, 282), "patch": 24,
                "hidden": 1000, "conv_channels": (20, 50), "teacher_steps": 400,
                "student_hidden": 512, "student_steps": 1200, "batch_size": 128,
                "eval_every": 100, "test_pixels": 6000, "lr": 0.01, "momentum": 0.9,
                "student_lr": 1e-3},
    "quick": {"train_images": 1, "test_images": 1, "size": (96, 96), "patch": 12,
              "hidden": 16, "conv_channels": (4, 6), "teacher_steps": 16, "student_hidden": 8,
              "student_steps": 16, "batch_size": 32, "eval_every": 8, "test_pixels": 400,
              "lr": 0.01, "momentum": 0.9, "student_lr": 1e-3},
}


def shallow(patch, hidden):
    """One hidden ReLU layer on the flattened patch."""
    return nn.Sequential(nn.Flatten(), nn.Linear(patch * patch, hidden), nn.ReLU(),
                         nn.Linear(hidden, 2))


def run(s: dict, seed: int, say) -> Result:
    data = make_data(train_images=s["train_images"], test_images=s["test_images"],
                     size=s["size"], patch=s["patch"], batch_size=s["batch_size"],
                     eval_every=s["eval_every"], test_pixels=s["test_pixels"], seed=seed)
    runs, rows = {}, []
    fastseg.seed(seed)
    teacher = models.lai2d(patch_size=s["patch"], conv_channels=s["conv_channels"],
                           hidden=s["hidden"])
    began = time.perf_counter()
    curves = run_training(teacher, data, optim.SGD(teacher.parameters(), lr=s["lr"],
                                                   momentum=s["momentum"]),
                          s["teacher_steps"])
    runs["teacher (lai2d, labels)"] = curves.as_json()
    final = curves.final()
    rows.append({"network": "lai2d (teacher)", "trained on": "labels",
                 "parameters": parameter_count(teacher), "steps": curves.step[-1],
                 "test Dice": final["dice"], "test AUC": final["auc"],
                 "seconds": round(time.perf_counter() - began, 1)})
    say(f"teacher lai2d: test Dice {final['dice']:.3f}")
    teacher.eval()
    for target in ("labels", "teacher's logits"):
        fastseg.seed(seed + 1)  # the same student weights for both
        student = shallow(s["patch"], s["student_hidden"])
        began = time.perf_counter()
        curves = run_training(student, data, optim.Adam(student.parameters(),
                                                        lr=s["student_lr"]),
                              s["student_steps"],
                              teacher=teacher if target != "labels" else None)
        final = curves.final()
        rows.append({"network": f"shallow student (1 x {s['student_hidden']})",
                     "trained on": target, "parameters": parameter_count(student),
                     "steps": curves.step[-1], "test Dice": final["dice"],
                     "test AUC": final["auc"],
                     "seconds": round(time.perf_counter() - began, 1)})
        runs[f"student, {target}"] = curves.as_json()
        say(f"student on {target}: test Dice {final['dice']:.3f}")
    teacher_run = runs["teacher (lai2d, labels)"]
    panels = [{"title": f"test {metric}", "xlabel": "step",
               "series": {n: (r["step"], r["test"][metric]) for n, r in runs.items()}}
              for metric in ("dice", "auc")]
    notes = [f"teacher: SGD with momentum, {teacher_run['step'][-1]} steps; students: Adam "
             f"(lr {s['student_lr']:g}), {s['student_steps']} steps, the same batches."]
    return Result(NAME, TITLE, ["network", "trained on", "parameters", "steps", "test Dice",
                                "test AUC", "seconds"], rows, panels, runs, s, notes)
