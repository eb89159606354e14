"""Retry decorators with arguments, on tools, agent methods and helpers.

Exercises: ``retry(times, on=(...), backoff=...)``, a decorator factory built on
``functools.wraps`` that passes the attempt number to the wrapped function (the
failure pattern is a function of the arguments and the attempt, so it is
deterministic), used under ``@nalarc.tool`` (``@nalarc.tool`` over ``@retry(3)``),
on an agent method, and on an undecorated helper that calls a tool; a retry that
only catches one exception type (another type escapes at once); retries exhausted
(the last error escapes the request); the fake backoff schedule returned with the
result; an exception class with a non-standard ``__init__`` carrying the attempt.
"""

import functools
import time

import nalarc


class TransientError(Exception):
    def __init__(self, what, attempt):
        super().__init__(f"{what} failed on attempt {attempt}")
        self.what = what
        self.attempt = attempt


class PermanentError(Exception):
    pass


def retry(times, on=(TransientError,), backoff=0.5):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            delays = []
            for attempt in range(times):
                try:
                    result = fn(*args, attempt=attempt, **kwargs)
                except on:
                    if attempt == times - 1:
                        raise
                    delays.append(backoff * 2**attempt)
                else:
                    return {"result": result, "delays": delays}
            raise AssertionError("unreachable")

        return wrapper

    return decorate


def flakiness(key):
    return sum(map(ord, key)) % 4


@nalarc.tool
@retry(3)
def fetch(url, attempt=0):
    time.sleep(0.002 + 0.003 * (5 - len(url) % 6))
    if url.startswith("gone:"):
        raise PermanentError(f"{url} is gone")
    if attempt < flakiness(url):
        raise TransientError(url, attempt)
    return f"<{url}>"


@nalarc.tool
def parse(html):
    time.sleep(0.002)
    return html.strip("<>").split("/")


@nalarc.agent
class Crawler:
    @retry(2, backoff=1.0)
    def crawl(self, root, attempt=0):
        page = fetch(root)
        if attempt == 0 and len(page["delays"]) > 1:
            raise TransientError(f"crawl {root}", attempt)
        return parse(page["result"])


@retry(4, on=(TransientError, KeyError), backoff=0.25)
def resolve(alias, table, attempt=0):
    key = alias if attempt == 0 else alias.lower()
    return fetch(table[key])["result"]


@nalarc.workflow
def crawl(urls):
    pages = []
    errors = []
    for url in urls:
        try:
            pages.append(fetch(url))
        except TransientError as exc:
            errors.append({"what": exc.what, "attempt": exc.attempt, "msg": str(exc)})
        except PermanentError as exc:
            errors.append({"permanent": str(exc)})
    return {"pages": pages, "errors": errors}


@nalarc.workflow
def deep_crawl(root):
    return Crawler().crawl(root)


@nalarc.workflow
def lookup(alias):
    table = {"home": "site/home", "docs": "site/docs/index"}
    return resolve(alias, table)


CALLS = [
    ("crawl", {"urls": ["a.io", "bb.io/x", "gone:old", "ccc.io/y/z", "d"]}, "s1"),
    ("deep_crawl", {"root": "bb.io/x"}, "s1"),
    ("deep_crawl", {"root": "news.io/x"}, "s2"),
    ("deep_crawl", {"root": "a.io/q"}, "s2"),
    ("lookup", {"alias": "HOME"}, "s2"),
    ("lookup", {"alias": "Blog"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
