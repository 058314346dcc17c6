"""Kernel settings measured on this CPU: ``fastseg tune`` and the first-use tuner.

:mod:`.cache` reads and writes the choices (one JSON file per CPU model, ISA and
fastseg version in the user's cache folder); the floors that use them ask it with
:func:`.cache.get`, falling back to the constants fitted to the caches.
"""
