"""Agents implementing an ``abc.ABC`` interface.

Exercises: an abstract base class (``abc.ABC`` with ``@abc.abstractmethod`` and an
abstract property) whose concrete method calls the abstract ones, two agents
implementing it, a template method inherited from the ABC called on agent handles,
``isinstance(handle, Provider)`` against the ABC, a workflow choosing the provider
from its input through a dict of classes, and a request that instantiates the
abstract class itself (``TypeError`` escapes, as in plain Python).
"""

import abc
import time

import nalarc


@nalarc.tool
def http_get(url):
    time.sleep(0.002 + 0.003 * (9 - len(url) % 10))
    if "down" in url:
        raise ConnectionError(f"{url} is unreachable")
    return {"url": url, "body": url.rsplit("/", 1)[-1] * 2}


class Provider(abc.ABC):
    retries = 1

    @property
    @abc.abstractmethod
    def base_url(self):
        """Where this provider lives."""

    @abc.abstractmethod
    def parse(self, body):
        """Turn a body into records."""

    def fetch(self, path):
        errors = []
        for _ in range(self.retries + 1):
            try:
                reply = http_get(f"{self.base_url}/{path}")
            except ConnectionError as exc:
                errors.append(str(exc))
            else:
                return {"records": self.parse(reply["body"]), "errors": errors}
        return {"records": [], "errors": errors}


@nalarc.agent
class Weather(Provider):
    @property
    def base_url(self):
        return "https://weather.example"

    def parse(self, body):
        return [{"temp": len(body)}]


@nalarc.agent
class Tides(Provider):
    retries = 2

    @property
    def base_url(self):
        return "https://down.tides.example"

    def parse(self, body):
        return body.split("-")


PROVIDERS = {"weather": Weather, "tides": Tides}


@nalarc.workflow
def forecast(kinds, path):
    out = {}
    for kind in kinds:
        provider = PROVIDERS[kind]()
        out[kind] = {"data": provider.fetch(path), "abc": isinstance(provider, Provider),
                     "url": provider.base_url}
    return out


@nalarc.workflow
def abstract():
    return Provider().fetch("x")


CALLS = [
    ("forecast", {"kinds": ["weather", "tides"], "path": "today"}, "s1"),
    ("forecast", {"kinds": ["weather"], "path": "a-b-c"}, "s2"),
    ("abstract", {}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
