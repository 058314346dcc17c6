"""tools/house_rules.py: the real tree keeps the house rules, and each rule catches a tree
built to break it."""
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import house_rules  # noqa: E402


def test_the_source_tree_keeps_the_rules():
    assert house_rules.check() == []


def _tree(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    (tmp_path / "kernels").mkdir(exist_ok=True)
    return house_rules.check(tmp_path / "src", tmp_path / "kernels")


BASE = {"fastseg/__init__.py": "", "fastseg/data/__init__.py": "",
        "fastseg/_inference/__init__.py": "", "fastseg/_cy/__init__.py": "",
        "fastseg/backends/__init__.py": "", "fastseg/_commands/__init__.py": ""}


@pytest.mark.parametrize("files,needle", [
    ({"fastseg/data/a.py": "from fastseg import nn\n", "fastseg/nn.py": ""},
     "data/ imports no nn"),
    ({"fastseg/ops.py": "import fastseg.segmenter\n", "fastseg/segmenter.py": ""},
     "know no data and no segmentation"),
    ({"fastseg/_inference/x.py": "def f():\n    from fastseg import io\n", "fastseg/io.py": ""},
     "the inference package imports no"),
    ({"fastseg/viz.py": "from fastseg._commands import CLIError\n"},
     "no library module imports _commands or cli"),
    ({"fastseg/ops.py": "from fastseg._cy import _gemm\n", "fastseg/_cy/_gemm.py": ""},
     "only backends/c.py imports _cy"),
    ({"fastseg/a.py": "from fastseg import b\n",
      "fastseg/b.py": "def f():\n    import fastseg.a\n"},
     "import circle: fastseg.a -> fastseg.b"),
    ({"fastseg/segment.py": "from fastseg.data.patches import _cut\n",
      "fastseg/data/patches.py": "def _cut(): pass\n"},
     "uses the private fastseg.data.patches._cut outside fastseg.data"),
    ({"fastseg/segment.py": "from fastseg.data import patches\nx = patches._cut\n",
      "fastseg/data/patches.py": "def _cut(): pass\n"},
     "uses the private fastseg.data.patches._cut"),
])
def test_each_rule_catches_a_tree_that_breaks_it(tmp_path, files, needle):
    problems = _tree(tmp_path, {**BASE, **files})
    assert any(needle in p for p in problems), problems


def test_private_names_inside_their_own_package_are_fine(tmp_path):
    files = {**BASE, "fastseg/_inference/a.py": "from fastseg._inference.b import _x\n",
             "fastseg/_inference/b.py": "_x = 1\n", "fastseg/c.py": "from fastseg import _v\n",
             "fastseg/_v.py": ""}
    assert _tree(tmp_path, files) == []


def test_kernels_know_no_python(tmp_path):
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "k.c").write_text("#include <Python.h>\n")
    assert any("knows no Python" in p for p in _tree(tmp_path, BASE))
