"""`fastseg bench` end to end on the quick shapes."""
import json

from fastseg.cli import main


def test_bench_quick_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--group", "gemm,conv2d-fwd", "--threads", "1",
                 "--backends", "c,numpy", "--repeats", "1", "--settle", "0", "--json", str(out)])
    assert code == 0
    table = capsys.readouterr().out
    assert "c vs numpy" in table and "conv2d-fwd" in table and "train-step" not in table
    data = json.loads(out.read_text())
    assert {r["group"] for r in data["rows"]} == {"gemm", "conv2d-fwd"}
    assert all(r["seconds"]["c"] > 0 for r in data["rows"])
    assert data["machine"]["isa"] in ("avx512", "avx2", "generic")


def test_bench_bad_options_exit_2(capsys):
    assert main(["bench", "--quick", "--group", "nope"]) == 2
    assert "--group: unknown nope" in capsys.readouterr().err
    assert main(["bench", "--quick", "--threads", "0,x"]) == 2
    assert main(["bench", "--quick", "--backends", "tpu"]) == 2
    assert "tpu not available" in capsys.readouterr().err


def test_bench_segment_with_the_engines(capsys):
    code = main(["bench", "--quick", "--group", "segment", "--threads", "2", "--backends",
                 "c,onnxruntime,openvino", "--repeats", "1", "--settle", "0"])
    assert code == 0
    table = capsys.readouterr().out
    assert "onnxruntime ms" in table and "openvino ms" in table and "c vs openvino" in table
    assert "lai2d-20x17" in table


def test_bench_engines_alone_on_kernel_groups_exit_2(capsys):
    assert main(["bench", "--quick", "--group", "gemm", "--backends", "onnxruntime"]) == 2
    assert "run only the segment group" in capsys.readouterr().err
