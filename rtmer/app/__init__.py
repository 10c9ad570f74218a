"""The ``rtmer`` program: the command line, the run loop, analysis, the display (docs/architecture.md)."""
