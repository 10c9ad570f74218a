#!/usr/bin/env python3
"""Print the OSC messages rtmer sends (a python-osc UDP server).

    python clients/osc_receiver.py                    # listens on 127.0.0.1:9000
    python clients/osc_receiver.py --port 9001 --count 10

Start rtmer with ``--osc 127.0.0.1:9000``. Needs only the ``python-osc`` package.
Each bundle from rtmer holds /valence, /arousal, /va, /mood and /raw/va (see README).
"""

from __future__ import annotations

import argparse
from typing import Any

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Print the OSC messages rtmer sends.")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=9000, help="UDP port (default 9000)")
    ap.add_argument("--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)")
    args = ap.parse_args(argv)

    seen = 0
    server: BlockingOSCUDPServer

    def show(address: str, *values: Any) -> None:
        nonlocal seen
        print(address, *(f"{v:.4f}" if isinstance(v, float) else v for v in values), flush=True)
        seen += 1
        if args.count and seen >= args.count:
            raise SystemExit(0)

    dispatcher = Dispatcher()
    dispatcher.set_default_handler(show)
    server = BlockingOSCUDPServer((args.host, args.port), dispatcher)
    print(f"listening for OSC on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
