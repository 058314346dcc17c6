"""Segmenting files: what ``fastseg segment`` and :mod:`fastseg.distributed` share.

:mod:`.naming` finds input images and volumes, names their outputs and pairs files
across folders; :mod:`.segment_file` segments one input file to its outputs and says
what became of it (:class:`~.segment_file.FileReport`); :mod:`.folder` is what the
process that owns the output folder adds: the run card, a record (and a ``volumes.csv``
row) per input, the report. Both raise fastseg's own
errors (:class:`fastseg.errors.FastsegError`), never the command line's: the command
line and the cluster stand on this package, and it knows neither.
"""
