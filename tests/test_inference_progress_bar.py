"""fastseg._inference.progress_bar: the one progress bar over tiles, slices and blocks."""
import pytest
from _segment_helpers import image_of, tiny_net

from fastseg import segment
from fastseg._inference import progress_bar


def test_progress_bar_runs(capsys):
    prob = segment(tiny_net(1, 9), image_of(1, 20, 20), tile=4, progress=True)
    assert prob.shape == (20, 20)
    assert "segment" in capsys.readouterr().err


def test_each_yields_every_item_in_order_with_or_without_a_bar(capsys):
    items = list(range(20))
    assert list(progress_bar.each(items, False, "tile")) == items
    assert capsys.readouterr().err == ""
    assert list(progress_bar.each(iter(items), True, "block")) == items
    err = capsys.readouterr().err
    assert "segment" in err and "block" in err


def test_automatic_bar_needs_many_items_and_a_terminal(capsys):
    # Under pytest stderr is no terminal: None shows nothing however many items.
    assert list(progress_bar.each(range(100), None, "tile")) == list(range(100))
    assert capsys.readouterr().err == ""


def test_bar_is_closed_when_the_loop_stops_early(capsys):
    gen = progress_bar.each(range(50), True, "slice")
    assert next(gen) == 0
    gen.close()  # the consumer stopped: the bar's finally closes it
    with pytest.raises(StopIteration):
        next(gen)
    assert "slice" in capsys.readouterr().err
