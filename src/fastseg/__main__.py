"""``python -m fastseg ...`` is the ``fastseg`` command."""
from fastseg.cli import main

raise SystemExit(main())
