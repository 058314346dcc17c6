"""`fastseg experiment NAME --quick` for every experiment (what CI runs), what each writes,
the experiments' set-ups (equal parameter counts, depth), and the errors."""
import json

import numpy as np
import pytest
from PIL import Image

from fastseg import experiments, models, optim
from fastseg.cli import main
from fastseg.experiments import _common, depth, vanishing

#: The configurations each experiment compares (the keys of its JSON "runs").
RUNS = {
    "activations": ["sigmoid", "tanh", "relu", "xsin"],
    "vanishing": ["sigmoid", "sigmoid + pre-training", "tanh", "tanh + pre-training", "relu",
                  "relu + pre-training", "relu + pre-training, lr / 10", "relu, He init"],
    "optimizers": ["SGD", "SGD + momentum", "Rprop", "Adam"],
    "dropout": ["no dropout", "dropout 0.5"],
    "depth": ["deep MLP", "shallow MLP", "deep conv", "shallow conv"],
    "mimic": ["teacher (lai2d, labels)", "student, labels", "student, teacher's logits"],
}


def test_every_experiment_is_listed():
    assert set(RUNS) == set(experiments.NAMES)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """Every experiment's --quick run through the command line, once (threads: 1)."""
    out = tmp_path_factory.mktemp("experiments")
    code = main(["experiment", "all", "--quick", "--out", str(out), "--threads", "1"])
    assert code == 0
    return out


@pytest.mark.parametrize("name", experiments.NAMES)
def test_quick_run_writes_table_plot_and_json(name, quick_runs):
    doc = json.loads((quick_runs / f"{name}.json").read_text())
    assert doc["experiment"] == name and doc["settings"]["quick"] is True
    assert doc["environment"]["threads"] == 1 and doc["seconds"] >= 0 <= doc["cpu_seconds"]
    assert list(doc["runs"]) == RUNS[name]
    assert len(doc["table"]) == len(doc["runs"])
    settings = experiments.settings(name, quick=True)
    for run in doc["runs"].values():
        for curves in run.get("seeds", [run]):
            evaluations = len(curves["step"])
            assert evaluations >= 2 and curves["step"] == sorted(curves["step"])
            assert all(len(v) == evaluations for v in curves["test"].values())
            assert all(0 <= d <= 1 for d in curves["test"]["dice"])
            assert all(loss > 0 for loss in curves["step_loss"])
            assert curves["step"][-1] <= settings.get("steps", curves["step"][-1])
    table = (quick_runs / f"{name}.md").read_text()
    assert table.startswith(f"# {doc['title']}") and "| " + " | ".join(doc["columns"]) in table
    with Image.open(quick_runs / f"{name}.png") as img:
        assert img.format == "PNG" and img.size[0] >= 300


def test_vanishing_records_every_layer(quick_runs):
    doc = json.loads((quick_runs / "vanishing.json").read_text())
    for label, run in doc["runs"].items():
        assert len(run["layers"]) == 9
        record = run["diagnostics"]
        assert record["step"][0] == 0 and set(record["grad_norm"]) == set(run["layers"])
        assert bool(run["pretrain_loss"]) == ("pre-training" in label)
        if run["pretrain_loss"]:  # every hidden layer, not the output layer
            assert list(run["pretrain_loss"]) == run["layers"][:-1]


def test_default_set_ups_are_what_the_docs_say():
    s = experiments.settings("vanishing")
    net = vanishing.deep_plain_net(vanishing.ACTIVATIONS["relu"], s)
    assert sum(1 for m in net.modules() if m._parameters.get("weight") is not None) == 9
    counts = {name: _common.parameter_count(build())
              for name, (build, _) in depth.pairs(experiments.settings("depth")).items()}
    for deep, shallow in (("deep MLP", "shallow MLP"), ("deep conv", "shallow conv")):
        assert abs(counts[shallow] - counts[deep]) <= 0.03 * counts[deep], counts


def test_markdown_table_and_json_cleaning():
    text = _common.markdown_table(["a", "b"], [{"a": 0.123456, "b": "x"}, {"a": 3}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 0.1235 | x |", "| 3 |  |"]
    assert _common.finite({"x": [1.0, float("nan")], "y": float("inf")}) == \
        {"x": [1.0, None], "y": None}


def test_unknown_experiment_is_one_line(capsys):
    assert main(["experiment", "nonsense", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("fastseg experiment: error: unknown experiment 'nonsense'")
    assert "activations" in err and "mimic" in err
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.run("nonsense")


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--quick" in out and "vanishing" in out and "--threads" in out


def test_a_run_that_diverges_is_recorded_not_raised():
    data = _common.make_data(train_images=1, test_images=1, size=(64, 64), patch=12,
                             batch_size=8, eval_every=2, test_pixels=40)
    net = models.lai2d(patch_size=12, hidden=8)
    with np.errstate(all="ignore"):  # the weights overflow on purpose
        curves = _common.run_training(net, data, optim.SGD(net.parameters(), lr=1e30), 6)
    assert curves.diverged is not None and curves.diverged_at().startswith("at step")
    assert len(curves.step_loss) == curves.diverged
