"""Fuzz target: the report's files, read alone and into the report page
(``fastseg.report.build``, which must take whatever the readers let through): an input
naming the run card's format (``"fastseg-run"``) is the folder's ``fastseg-run.json``
(``read_run_card``), one naming ``"fastseg-evaluation"`` its ``evaluation.json``
(``read_evaluation``), any other a per-input record ``x_record.json`` (``read_record``),
beside two good records."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Scratch, check, instrumented, run  # noqa: E402

with instrumented("json"):
    from fastseg import report
    from fastseg.report.card import read_run_card
    from fastseg.report.evaluation import read_evaluation
    from fastseg.report.records import read_record

SCRATCH = Scratch("x_record.json")
FOLDER = SCRATCH.folder
GOOD = {
    "a": {"format": "fastseg-record", "version": 1, "input": "a.png", "stem": "a",
          "kind": "image", "status": "done", "error": None, "seconds": 0.5, "worker": None,
          "shape": [40, 50], "outputs": {"prob": "a_prob.png", "mask": "a_mask.png",
                                         "overlay": "a_overlay.png"},
          "pictures": [{"label": "overlay", "path": "a_overlay.png"}],
          "numbers": {"foreground": 120, "fov_pixels": 1600, "vessel_fraction": 0.075},
          "facts": {"foreground": 120, "empty": False, "components": 3,
                    "touches_border": True, "ndim": 2, "fov_pixels": 1600,
                    "fov_fraction": 0.8},
          "fov_estimated": True},
    "b": {"format": "fastseg-record", "version": 1, "input": "b.nii.gz", "stem": "b",
          "kind": "volume", "status": "failed", "error": "b.nii.gz: not a NIfTI file",
          "seconds": 0.1, "worker": "tcp://127.0.0.1:1", "shape": None, "outputs": {},
          "pictures": [], "numbers": {}, "facts": None, "fov_estimated": None},
}
for stem, record in GOOD.items():
    with open(os.path.join(SCRATCH.folder, f"{stem}_record.json"), "w") as f:
        json.dump(record, f)


def one_input(data: bytes) -> None:
    for name in ("x_record.json", "fastseg-run.json", "evaluation.json"):
        path = os.path.join(FOLDER, name)
        if os.path.exists(path):
            os.unlink(path)
    if b'"fastseg-run"' in data:
        with open(os.path.join(FOLDER, "fastseg-run.json"), "wb") as f:
            f.write(data)
        check(read_run_card, FOLDER)
    elif b'"fastseg-evaluation"' in data:
        with open(os.path.join(FOLDER, "evaluation.json"), "wb") as f:
            f.write(data)
        check(read_evaluation, FOLDER)
    else:
        check(read_record, SCRATCH.write(data))
    check(report.build, FOLDER)


if __name__ == "__main__":
    run(one_input)
