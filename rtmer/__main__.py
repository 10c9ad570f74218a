"""``python -m rtmer``: the same as the ``rtmer`` command."""

from rtmer.cli import main

raise SystemExit(main())
