"""Where updates go: OSC, CSV/NDJSON, the WebSocket server and its page (docs/architecture.md)."""
