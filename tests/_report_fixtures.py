"""Output folders for the report tests: real small PNGs (Pillow) and records made by
fastseg.report.record_of from FileReports, as a segmentation run leaves them."""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from PIL import Image

from fastseg import report
from fastseg._files import naming
from fastseg._files.segment_file import FileReport

PHOTO_SHAPE = (48, 40)  # H, W


def disc(shape=PHOTO_SHAPE, margin=3):
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    r = min(h, w) / 2 - margin
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= r * r


def vessel_mask(shape=PHOTO_SHAPE, width=2, rows=None):
    """A vertical bar in the middle (inside the FOV, off the border)."""
    h, w = shape
    m = np.zeros(shape, bool)
    top, bottom = rows or (8, h - 8)
    m[top:bottom, w // 2 - width // 2:w // 2 - width // 2 + width] = True
    return m


def _png(path, rgb_or_grey):
    Image.fromarray(np.asarray(rgb_or_grey, dtype=np.uint8)).save(path)


def photo(out, name, *, mask=None, fov=None, status="done", error=None, seconds=1.0,
          fov_estimated=False, color=(30, 90, 160), worker=None, write_pictures=True):
    """One photo input `name` segmented into folder `out`; returns its record."""
    out = Path(out)
    path = out.parent / "inputs" / name
    if status != "done":
        rep = FileReport(str(path), status, error=error, seconds=seconds, worker=worker)
        rec = report.record_of(rep, kind="image", out_dir=out)
        report.write_record(out, rec)
        return rec
    fov = disc() if fov is None else fov
    mask = vessel_mask() if mask is None else mask
    targets = naming.output_paths(out, path)
    if write_pictures:
        base = np.zeros((*mask.shape, 3), np.uint8)
        base[fov] = color
        overlay = base.copy()
        overlay[mask] = (0, 230, 0)
        _png(targets["prob"], mask.astype(np.uint8) * 200)
        _png(targets["mask"], mask.astype(np.uint8) * 255)
        _png(targets["overlay"], overlay)
    rep = FileReport(str(path), "done", outputs=tuple(str(t) for t in targets.values()),
                     shape=mask.shape, foreground=int(mask.sum()), fov_pixels=int(fov.sum()),
                     seconds=seconds, worker=worker)
    rec = report.record_of(rep, kind="image", fov_estimated=fov_estimated,
                           facts=report.mask_facts(mask, fov))
    report.write_record(out, rec)
    return rec


VOLUME_SHAPE = (16, 20, 24)


def hippocampi(shape=VOLUME_SHAPE, left=True, right=True):
    """A label map with a left (1) and a right (2) block, off the border."""
    lab = np.zeros(shape, np.uint8)
    if left:
        lab[5:11, 6:14, 3:9] = 1
    if right:
        lab[5:11, 6:14, 15:21] = 2
    return lab


def volume(out, name, *, labels=None, spacing=(1.0, 1.0, 1.0), seconds=2.0, sides=True):
    """One scan `name` segmented into `out` (NIfTI maps not written: the report only links
    pictures); per-hippocampus plane pictures; returns its record."""
    out = Path(out)
    path = out.parent / "inputs" / name
    labels = hippocampi() if labels is None else labels
    stem = naming.stem(name)
    pictures = []
    for side in ("left", "right") if sides else ("both",):
        for plane in ("axial", "coronal"):
            p = out / f"{stem}_{side}_{plane}.png"
            _png(p, np.full((20, 24, 3), (60, 60, 60) if side == "left" else (90, 40, 40)))
            pictures.append((f"{side} {plane}", p))
    rep = FileReport(str(path), "done", outputs=(), shape=labels.shape,
                     foreground=int((labels != 0).sum()), fov_pixels=int(labels.size),
                     seconds=seconds)
    rec = report.record_of(
        rep, kind="volume", out_dir=out, pictures=pictures,
        facts=report.mask_facts(labels, labels=report.HIPPOCAMPUS_LABELS),
        numbers=report.volume_numbers(labels, spacing, labels=report.HIPPOCAMPUS_LABELS))
    report.write_record(out, rec)
    return rec


def card(out, kind="image"):
    """A run card as fastseg segment would write it, from a bare (unfitted) Segmenter."""
    import fastseg

    seg = fastseg.Segmenter(model="lai2d" if kind == "image" else "lai3d")
    seg.fov_diameter_ = 36.0 if kind == "image" else None
    report.write_run_card(out, report.run_card(seg, model_path="models/model.fseg",
                                               backend="c", isa="avx2"))


class StrictHTML(HTMLParser):
    """Parses a page and fails on an unbalanced tag; collects text, links and rows."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text = [], [], []
        self.links, self.starts = [], []
        self.doctype = None

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))
        d = dict(attrs)
        if len(d) != len(attrs):
            self.errors.append(f"duplicate attribute in <{tag}>")
        for key in ("href", "src"):
            if key in d:
                self.links.append(d[key])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in self.VOID:
            self.errors.append(f"end tag of void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    @classmethod
    def check(cls, text):
        parser = cls()
        parser.feed(text)
        parser.close()
        assert parser.doctype and parser.doctype.lower() == "doctype html"
        assert not parser.errors, parser.errors[:5]
        assert not parser.stack, f"unclosed: {parser.stack}"
        return parser


class Rows(HTMLParser):
    """The table's body rows: ``[{"class": ..., "cells": [text of each cell]}]``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self._in_body, self._cell = [], False, None

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append({"class": dict(attrs).get("class", ""), "cells": []})
        elif self._in_body and tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1]["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    @classmethod
    def of(cls, text):
        parser = cls()
        parser.feed(text)
        return parser.rows


def row_of(text, name):
    """The body row whose input cell starts with `name`."""
    for row in Rows.of(text):
        if row["cells"][1].startswith(name):
            return row
    raise AssertionError(f"no row for {name!r}")
