"""W1 without nalarc, served over the same HTTP as ``nalarc run --serve``: plain asyncio and LangGraph.

Run by ``benchmarks/w1_concurrency.py`` as a server process:

    python benchmarks/_w1_baselines.py asyncio|langgraph [--threads 256] [--native-sleep]

It listens on a free port of 127.0.0.1 and prints ``serving w1 on http://127.0.0.1:PORT``
on stderr, like nalarc.  ``POST /v1/workflows/w1`` takes the same JSON body as the
nalarc app (``question``, ``k``, ``delay``) and answers ``{"result": ...}``; ``GET
/healthz`` answers ``{"status": "ok"}`` (the HTTP floor).  The HTTP server is
hypercorn, as in nalarc, on asyncio instead of trio.

Both run the very functions of ``examples/w1_diamond.py`` (plain Python ignores the
nalarc decorators), so they do the same work and return the same value:

* ``asyncio``: ``asyncio.to_thread`` for each (synchronous, blocking) tool call and
  ``asyncio.gather`` for the fan-out and the two arms of the diamond.
* ``langgraph``: a ``StateGraph``: ``plan``, then the ``k`` searches (``Send``, one
  per query) and ``fetch`` in one super-step, then ``combine``; ``ainvoke`` runs
  the synchronous nodes in the event loop's default executor.

The tools block a thread, so both get a thread pool as the event loop's default
executor: ``--threads`` (256, what nalarc's in-driver runtime allows; its worker
processes start threads on demand).  Python's own default,
``min(32, cpu_count + 4)`` threads (6 on 2 cores), would cap either at 6 tool
calls at once.  ``--native-sleep`` (asyncio only) replaces the thread hop with
``asyncio.sleep``: a floor, not an equivalent (the tools are synchronous).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import operator
import socket
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, TypedDict

APP = Path(__file__).resolve().parents[1] / "examples" / "w1_diamond.py"


def load_plain_app() -> ModuleType:
    """``examples/w1_diamond.py`` as plain Python (its tools are ordinary functions)."""
    spec = importlib.util.spec_from_file_location("w1_diamond_plain", APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W1 = load_plain_app()

Workflow = Callable[[str, int, float], Awaitable[Any]]


# -- asyncio -------------------------------------------------------------------

async def w1_asyncio(question: str, k: int = 6, delay: float = W1.DELAY) -> Any:
    planned = await asyncio.to_thread(W1.plan, question, k, delay)
    hits, page = await asyncio.gather(
        asyncio.gather(*(asyncio.to_thread(W1.Searcher().search, query, delay) for query in planned["queries"])),
        asyncio.to_thread(W1.fetch, planned["page"], delay),
    )
    return await asyncio.to_thread(W1.combine, question, list(hits), page, delay)


async def w1_asyncio_native(question: str, k: int = 6, delay: float = W1.DELAY) -> Any:
    """The same graph with ``asyncio.sleep`` in place of the blocking sleeps (no threads): a floor."""
    async def tool(fn: Callable[..., Any], *args: Any) -> Any:
        await asyncio.sleep(delay)
        return fn(*args, 0.0)

    planned = await tool(W1.plan, question, k)
    hits, page = await asyncio.gather(
        asyncio.gather(*(tool(W1.Searcher().search, query) for query in planned["queries"])),
        tool(W1.fetch, planned["page"]),
    )
    return await tool(W1.combine, question, list(hits), page)


# -- LangGraph -------------------------------------------------------------------

class W1State(TypedDict, total=False):
    question: str
    k: int
    delay: float
    queries: list[str]
    page_url: str
    hits: Annotated[list[tuple[int, str]], operator.add]  # the fan-out's branches append here
    page: str
    answer: Any


class SearchTask(TypedDict):
    index: int
    query: str
    delay: float


def build_langgraph() -> Workflow:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Send

    def plan_node(state: W1State) -> W1State:
        planned = W1.plan(state["question"], state["k"], state["delay"])
        return {"queries": planned["queries"], "page_url": planned["page"]}

    def branches(state: W1State) -> list[Any]:
        searches: list[Any] = [Send("search", SearchTask(index=i, query=q, delay=state["delay"]))
                               for i, q in enumerate(state["queries"])]
        return [*searches, "fetch"]

    def search_node(task: SearchTask) -> W1State:
        return {"hits": [(task["index"], W1.Searcher().search(task["query"], task["delay"]))]}

    def fetch_node(state: W1State) -> W1State:
        return {"page": W1.fetch(state["page_url"], state["delay"])}

    def combine_node(state: W1State) -> W1State:
        hits = [hit for _, hit in sorted(state["hits"])]
        return {"answer": W1.combine(state["question"], hits, state["page"], state["delay"])}

    graph = StateGraph(W1State)
    graph.add_node("plan", plan_node)
    graph.add_node("search", search_node)  # type: ignore[call-overload]
    graph.add_node("fetch", fetch_node)
    graph.add_node("combine", combine_node)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", branches, ["search", "fetch"])
    graph.add_edge("search", "combine")  # both arms end in one super-step: combine runs once
    graph.add_edge("fetch", "combine")
    graph.add_edge("combine", END)
    compiled = graph.compile()

    async def w1_langgraph(question: str, k: int = 6, delay: float = W1.DELAY) -> Any:
        final = await compiled.ainvoke({"question": question, "k": k, "delay": delay, "hits": []})
        return final["answer"]

    return w1_langgraph


# -- HTTP ------------------------------------------------------------------------

def asgi_app(workflow: Workflow) -> Callable[..., Awaitable[None]]:
    """``POST /v1/workflows/w1`` and ``GET /healthz``, answered like ``nalarc run --serve``."""

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        if scope["path"] == "/healthz":
            status, value = 200, {"status": "ok"}
        elif scope["path"] == "/v1/workflows/w1" and scope["method"] == "POST":
            try:
                status, value = 200, {"result": await workflow(**json.loads(body))}
            except Exception as exc:  # noqa: BLE001 - reported to the client, as nalarc does
                status, value = 500, {"error": type(exc).__name__, "message": str(exc)}
        else:
            status, value = 404, {"error": f"no endpoint {scope['path']}"}
        payload = json.dumps(value, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    return app


async def serve(workflow: Workflow, threads: int) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=threads))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = Config()
    config.bind = [f"fd://{listener.fileno()}"]
    config.backlog = 4096
    config.accesslog = None
    config.loglevel = "WARNING"
    print(f"serving w1 on http://127.0.0.1:{listener.getsockname()[1]}", file=sys.stderr, flush=True)
    await hypercorn_serve(asgi_app(workflow), config)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("system", choices=["asyncio", "langgraph"])
    parser.add_argument("--threads", type=int, default=256, help="threads of the event loop's default executor")
    parser.add_argument("--native-sleep", action="store_true", help="asyncio only: asyncio.sleep instead of threads")
    args = parser.parse_args()
    if args.system == "langgraph":
        workflow = build_langgraph()
    else:
        workflow = w1_asyncio_native if args.native_sleep else w1_asyncio
    try:
        asyncio.run(serve(workflow, args.threads))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
