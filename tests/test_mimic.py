"""Mimic training: the loss is the squared error to the teacher's logits (checked against a
PyTorch student), the student learns them, and mismatched networks are refused."""
import json

import numpy as np
import pytest

import fastseg
from fastseg import models, nn, optim, train
from fastseg.cli import main

torch = pytest.importorskip("torch")

# The API on both host backends; the command line once.
on_host_backends = pytest.mark.usefixtures("host_backend")


def teacher_net():
    net = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=16)
    return net.eval()


def student_net(classes=2):
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, classes))


def batches(n_batches=4, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(8, 1, 12, 12)).astype(np.float32), None)
            for _ in range(n_batches)]


def torch_student(student):
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 8), torch.nn.ReLU(),
                            torch.nn.Linear(8, 2))
    t.load_state_dict({k: torch.tensor(v) for k, v in student.state_dict().items()})
    return t


@on_host_backends
def test_loss_and_step_target_the_teachers_logits():
    teacher, student = teacher_net(), student_net()
    teacher_state = {k: v.copy() for k, v in teacher.state_dict().items()}
    data = batches(1)
    x = data[0][0]
    target = teacher(x)
    t = torch_student(student)
    tloss = torch.nn.MSELoss()(t(torch.tensor(x)), torch.tensor(target))
    tloss.backward()
    lr = 0.1
    hist = train.mimic(teacher, student, data, optim.SGD(student.parameters(), lr=lr),
                       progress=False)
    assert hist["step_loss"][0] == pytest.approx(tloss.item(), rel=1e-5)
    for (key, value), param in zip(student.state_dict().items(), t.parameters(), strict=True):
        expected = param.detach().numpy() - lr * param.grad.numpy()
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=key)
    for key, value in teacher.state_dict().items():  # the teacher is not trained
        np.testing.assert_array_equal(value, teacher_state[key])
    assert not teacher.training


@on_host_backends
def test_student_learns_the_teacher_and_ignores_labels():
    teacher, student = teacher_net(), student_net()
    teacher.train()
    rng = np.random.default_rng(3)
    data = [(rng.normal(size=(16, 1, 12, 12)).astype(np.float32), rng.integers(0, 2, 16))
            for _ in range(8)]
    x = data[0][0]
    teacher.eval()
    gap_before = float(np.mean((student(x) - teacher(x)) ** 2))
    teacher.train()
    hist = train.mimic(teacher, student, data, optim.Adam(student.parameters(), lr=3e-3),
                       epochs=15, progress=False, diagnostics=5)
    assert hist["loss"][-1] < 0.2 * hist["loss"][0]
    assert teacher.training  # its mode is restored
    assert hist["diagnostics"]["step"][:2] == [0, 5]
    # The student's logits, not only its decisions, approach the teacher's.
    teacher.eval()
    assert float(np.mean((student.eval()(x) - teacher(x)) ** 2)) < 0.2 * gap_before


@on_host_backends
def test_mismatched_networks_are_refused():
    teacher = teacher_net()
    with pytest.raises(ValueError, match="student has 3 outputs, more than the teacher's 2"):
        train.mimic(teacher, student_net(3), batches(), optim.SGD(student_net().parameters(),
                                                                  lr=0.1))
    with pytest.raises(ValueError, match="fewer than the teacher's 2"):
        train.mimic(teacher, student_net(1), batches(), optim.SGD(student_net().parameters(),
                                                                  lr=0.1))
    wide = nn.Sequential(nn.Flatten(), nn.Linear(100, 2))
    small = [(np.zeros((2, 1, 10, 10), np.float32), None)]
    with pytest.raises(ValueError, match="teacher does not take the student's input"):
        train.mimic(teacher, wide, small, optim.SGD(wide.parameters(), lr=0.1), progress=False)
    with pytest.raises(ValueError, match="one-shot"):
        train.mimic(teacher, student_net(), iter(batches()),
                    optim.SGD(student_net().parameters(), lr=0.1), epochs=2)


TINY = ["--data", "synthetic", "--images", "1", "--size", "64", "64", "--epochs", "1",
        "--batches", "2", "--batch-size", "16", "--hidden", "8"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_teacher_pretrain_and_diagnostics(tmp_path, capsys):
    code, _, err = run(["train", *TINY, "--patch-size", 12, "--out", tmp_path / "teacher"],
                       capsys)
    assert code == 0, err
    code, out, err = run(["train", *TINY, "--patch-size", 12, "--out", tmp_path / "student",
                          "--teacher", tmp_path / "teacher" / "model.fseg", "--pretrain",
                          "layerwise", "--pretrain-patches", 40, "--pretrain-epochs", 1,
                          "--diagnostics", 1], capsys)
    assert code == 0, err
    assert "on the logits of" in out and "reconstruction loss" in out
    history = json.loads((tmp_path / "student" / "history.json").read_text())
    assert list(history["pretrain"]) == ["0:Conv2d", "2:Conv2d", "5:Linear"]
    assert history["diagnostics"]["step"] == [0, 1]
    assert (tmp_path / "student" / "diagnostics.png").stat().st_size > 0
    assert fastseg.Segmenter.load(tmp_path / "student" / "model.fseg").patch_size == 12


def one_line_error(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("fastseg train: error: "), err
    return lines[0]


def test_cli_refuses_a_mismatched_teacher(tmp_path, capsys):
    code, _, err = run(["train", *TINY, "--patch-size", 12, "--out", tmp_path / "t12"], capsys)
    assert code == 0, err
    line = one_line_error(*run(["train", *TINY, "--patch-size", 14, "--out", tmp_path / "s",
                                "--teacher", tmp_path / "t12" / "model.fseg"], capsys)[::2])
    assert "12x12 patches, but --patch-size is 14" in line
    three = models.lai2d(patch_size=12, conv_channels=(3, 4), hidden=8, num_classes=3)
    fastseg.save(three, tmp_path / "three.fseg")
    line = one_line_error(*run(["train", *TINY, "--patch-size", 12, "--out", tmp_path / "s",
                                "--teacher", tmp_path / "three.fseg"], capsys)[::2])
    assert "student has 2 outputs, fewer than the teacher's 3" in line
    line = one_line_error(*run(["train", *TINY, "--out", tmp_path / "s", "--teacher",
                                tmp_path / "missing.fseg"], capsys)[::2])
    assert "missing.fseg" in line
