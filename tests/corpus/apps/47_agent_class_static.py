"""Classmethods and staticmethods of agents, called on the class and on handles.

Exercises: a ``@staticmethod`` validator and a ``@classmethod`` that reads class
attributes, each called on the agent class and on a handle, from a workflow and
from the agent's own methods; a classmethod alternative constructor
(``Router.for_region("eu")``) whose result is a handle whose methods are called; a
staticmethod that calls a tool; ``isinstance(handle, Router)`` and a subclass that
overrides a class attribute the inherited classmethod reads.
"""

import time

import nalarc


@nalarc.tool
def geo(region):
    time.sleep(0.002 + 0.004 * (3 - len(region) % 4))
    return {"eu": ["fra", "ams"], "us": ["iad", "sfo", "ord"]}.get(region, ["any"])


@nalarc.tool
def ping(host):
    time.sleep(0.001 + 0.002 * (len(host) % 3))
    return sum(map(ord, host)) % 50


@nalarc.agent
class Router:
    region = "us"
    fallback = "any"

    @staticmethod
    def valid(host):
        return host.isalpha() and len(host) == 3

    @staticmethod
    def latency(host):
        return ping(host)

    @classmethod
    def default_hosts(cls):
        return [cls.fallback, cls.region]

    @classmethod
    def for_region(cls, region):
        r = cls()
        r.region = region
        return r

    def route(self, region):
        hosts = [h for h in geo(region) if self.valid(h)]
        if not hosts:
            return {"host": self.fallback, "ms": None, "defaults": self.default_hosts()}
        ms = {h: self.latency(h) for h in hosts}
        best = min(hosts, key=lambda h: (ms[h], h))
        return {"host": best, "ms": ms[best], "defaults": type(self).default_hosts()}


@nalarc.agent
class EdgeRouter(Router):
    region = "eu"
    fallback = "edge"


@nalarc.workflow
def route(region):
    r = Router.for_region(region)
    edge = EdgeRouter()
    return {
        "route": r.route(region),
        "edge": edge.route(region),
        "region_attr": r.region,
        "static_on_class": Router.valid("fra"),
        "static_on_handle": r.valid("x1"),
        "class_defaults": Router.default_hosts(),
        "edge_defaults": edge.default_hosts(),
        "latency": Router.latency("ams"),
        "isinstance": [isinstance(r, Router), isinstance(edge, Router), isinstance(r, EdgeRouter)],
    }


CALLS = [
    ("route", {"region": "us"}, "s1"),
    ("route", {"region": "eu"}, "s2"),
    ("route", {"region": "mars"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
