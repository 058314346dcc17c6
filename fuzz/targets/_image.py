"""What the image targets share: ``read_image`` and ``read_mask`` (Pillow, tifffile) on the
input as a file of one format's suffix."""
from _common import Scratch, check, instrumented, run

with instrumented("PIL", "tifffile"):
    import tifffile  # noqa: F401  (the TIFF fallback, imported here to be instrumented)
    from PIL import Image

    from fastseg.data.folder import read_image, read_mask

    Image.init()  # Pillow imports its format plugins on first use: here, instrumented


def main(suffix: str) -> None:
    scratch = Scratch("image" + suffix)

    def one_input(data: bytes) -> None:
        path = scratch.write(data)
        check(read_image, path)
        check(read_mask, path)

    run(one_input)
