"""What the two NIfTI targets share: ``fastseg.data.load_nifti`` on the input as a file."""
from _common import Scratch, check, instrumented, run

with instrumented("nibabel", "gzip"):
    import nibabel  # noqa: F401  (load_nifti imports it on use: here, instrumented)

    from fastseg.data.nifti import load_nifti


def main(suffix: str) -> None:
    scratch = Scratch("scan" + suffix)

    def one_input(data: bytes) -> None:
        check(load_nifti, scratch.write(data))

    run(one_input)
