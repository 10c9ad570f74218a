"""The pure core: resample, frame, model, smooth, label; arrays in, ``Update``s out, no I/O (docs/architecture.md)."""
