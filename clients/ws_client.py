#!/usr/bin/env python3
"""Print rtmer's WebSocket stream; optionally subscribe to some streams only.

    python clients/ws_client.py                               # every stream
    python clients/ws_client.py --stream deck1 --stream deck2  # only these
    python clients/ws_client.py --url ws://10.0.0.5:8765 --count 20 --json

Needs only the ``websockets`` package. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print rtmer's WebSocket stream of valence/arousal updates.")
    ap.add_argument("--url", default="ws://127.0.0.1:8765", help="server URL (default ws://127.0.0.1:8765)")
    ap.add_argument("--stream", action="append", default=[], help="receive only this stream id (repeatable)")
    ap.add_argument("--count", type=int, default=0, help="exit after this many updates (default: run until closed)")
    ap.add_argument("--json", action="store_true", help="print each message as raw JSON")
    args = ap.parse_args(argv)

    try:
        with connect(args.url, open_timeout=5) as ws:
            hello = json.loads(ws.recv())
            model = hello.get("model", {})
            print(f"connected to {args.url}: model {model.get('model_name', '?')} {model.get('model_version', '')}, "
                  f"streams {hello.get('streams')}", flush=True)
            if args.stream:
                ws.send(json.dumps({"type": "subscribe", "streams": args.stream}))
            n = 0
            for frame in ws:
                raw = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                msg = json.loads(raw)
                if args.json:
                    print(raw, flush=True)
                elif msg.get("type") == "va":
                    print(f"{msg['stream']:>8} #{msg['seq']:<5} t={msg['t']:8.2f}s  valence={msg['valence']:+.3f}  "
                          f"arousal={msg['arousal']:+.3f}  mood={msg['mood']}", flush=True)
                else:
                    print(f"[{msg.get('type')}] {raw}", flush=True)
                if msg.get("type") == "va":
                    n += 1
                    if args.count and n >= args.count:
                        break
    except KeyboardInterrupt:
        return 0
    except ConnectionClosed as exc:
        print(f"connection closed: {exc}", file=sys.stderr)
        return 0
    except OSError as exc:
        print(f"cannot connect to {args.url}: {exc} (is `rtmer run` running with WebSocket on?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
