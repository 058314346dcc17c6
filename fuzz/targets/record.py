"""Fuzz target: the report's files -- a per-input record (``<stem>_record.json``,
``fastseg.report.read_record``) read alone and, beside two good records, into the
report page (``fastseg.report.build``), which must take whatever the reader let through."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import Scratch, check, instrumented, run  # noqa: E402

with instrumented("json"):
    from fastseg import report
    from fastseg.report.records import read_record

SCRATCH = Scratch("x_record.json")
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
    check(read_record, SCRATCH.write(data))
    check(report.build, SCRATCH.folder)


if __name__ == "__main__":
    run(one_input)
