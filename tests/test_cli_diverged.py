"""Training that diverges reaches the command line as a one-line fastseg error (exit 2)."""
import fastseg
from fastseg.cli import main


def test_train_that_diverges_is_a_one_line_error(tmp_path, capsys):
    if fastseg.get_backend() not in fastseg.available_backends():
        fastseg.set_backend("numpy")
    # A learning rate of 1e30 blows the weights up on the first update, so the second
    # step's logits are no longer finite.
    code = main(["train", "--data", "synthetic", "--images", "1", "--size", "64", "64",
                 "--epochs", "1", "--batches", "3", "--batch-size", "8", "--hidden", "8",
                 "--patch-size", "12", "--lr", "1e30", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("fastseg train: error: fit: ") and "training diverged" in err
    assert "lower learning rate" in err
    assert not (tmp_path / "run" / "model.fseg").exists()
