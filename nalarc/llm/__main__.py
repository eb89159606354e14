"""``python -m nalarc.llm [--host H] [--port N]``: the simulated engines as a standalone OpenAI-compatible server.

Point any OpenAI client at ``http://HOST:PORT/v1``.  Costs come from
``NALARC_LLM_TIME_SCALE``, ``NALARC_LLM_SEED`` and ``NALARC_LLM_MAX_BATCH``;
the ``X-Nalarc-Instance`` / ``X-Nalarc-Session`` headers (or the body's
``user``) pick the engine and the KV-cache session.  ``--quotas`` (or
``NALARC_LLM_QUOTAS``) makes it answer 429 over rate limits per model, e.g.
``--quotas "gpt:rpm=60,tpm=10000"`` (docs/flow-control.md).
"""

from __future__ import annotations

import argparse
import threading

from ._quota import parse_quotas
from ._server import start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nalarc.llm", description="the simulated LLM engines as a standalone OpenAI-compatible server")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (0: a free one)")
    parser.add_argument("--quotas", default=None,
                        help='rate limits answered with 429: "MODEL:rpm=N,tpm=N,window=S,burst=S;..." (* for any model)')
    args = parser.parse_args(argv)
    server = start(args.host, args.port, parse_quotas(args.quotas) if args.quotas is not None else None)
    print(f"nalarc simulated LLM server: http://{args.host}:{server.port}/v1", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.close()


if __name__ == "__main__":
    main()
