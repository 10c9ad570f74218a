"""Where audio comes from: sound cards, files, stdin, each polled for ``Block``s (docs/architecture.md)."""
