"""fastseg._atomic: a write killed outright leaves a temporary file, never the real name, and
remove_stale_temporaries clears exactly those temporaries."""
import os
import signal
import subprocess
import sys

from fastseg._atomic import atomic_write, remove_stale_temporaries

KILLED_WRITER = """
import sys, time
from fastseg._atomic import atomic_write
def write(f):
    f.write(b"half of it")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def test_killed_write_leaves_only_a_temporary_and_it_is_removed(tmp_path):
    target = tmp_path / "a_prob.png"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert not target.exists()
    (left,) = [n for n in os.listdir(tmp_path)]
    assert left.startswith(".a_prob.png.") and left.endswith(".tmp")

    others = [".b_prob.png.abc12345.tmp", "a_prob.png.tmp", ".a_prob.pngx.abc12345.tmp",
              "keep.png"]
    for name in others:
        (tmp_path / name).write_bytes(b"")
    atomic_write(tmp_path / "a_mask.png", lambda f: f.write(b"done"))
    assert remove_stale_temporaries(tmp_path, ["a_prob.png", "a_mask.png"]) == 1
    assert sorted(os.listdir(tmp_path)) == sorted(others + ["a_mask.png"])
    assert (tmp_path / "a_mask.png").read_bytes() == b"done"


def test_a_failed_write_names_the_destination_and_leaves_the_old_file(tmp_path):
    import errno

    import pytest

    target = tmp_path / "a_mask.png"
    target.write_bytes(b"the old file")

    def full_disk(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")  # what a write raises

    with pytest.raises(OSError) as err:
        atomic_write(target, full_disk)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert str(err.value) == f"[Errno 28] No space left on device: '{target}'"
    assert target.read_bytes() == b"the old file" and os.listdir(tmp_path) == ["a_mask.png"]

    def refused(f):
        raise PermissionError(errno.EACCES, "Permission denied")  # its kind is kept

    with pytest.raises(PermissionError, match=r"Permission denied: '.*a_mask.png'"):
        atomic_write(target, refused)

    def other(f):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "source.png")

    with pytest.raises(FileNotFoundError, match="source.png"):  # another file's error: as is
        atomic_write(target, other)
    assert os.listdir(tmp_path) == ["a_mask.png"]
