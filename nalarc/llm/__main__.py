"""``python -m nalarc.llm [--host H] [--port N]``: the simulated engines as a standalone OpenAI-compatible server.

Point any OpenAI client at ``http://HOST:PORT/v1``.  Costs come from
``NALARC_LLM_TIME_SCALE``, ``NALARC_LLM_SEED`` and ``NALARC_LLM_MAX_BATCH``;
the ``X-Nalarc-Instance`` / ``X-Nalarc-Session`` headers (or the body's
``user``) pick the engine and the KV-cache session.
"""

from __future__ import annotations

import argparse
import threading

from ._server import start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nalarc.llm", description="the simulated LLM engines as a standalone OpenAI-compatible server")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: a free one)")
    args = parser.parse_args(argv)
    server = start(args.host, args.port)
    print(f"nalarc simulated LLM server: http://{args.host}:{server.port}/v1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
