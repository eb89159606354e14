"""Mutation and aliasing around tool calls.

Exercises: a list passed to a tool and then mutated by the workflow (the tool
must see the list as it was at call time), a dict argument rebound and
mutated in a loop, tool results mutated in place by the workflow and then
passed to another tool, the same result aliased in two places, an agent
argument mutated after the call, copies vs aliases of results.
"""

import copy
import time

import nalarc


@nalarc.tool
def summarize(items):
    # Slow: the workflow mutates ``items`` long before this would run late.
    time.sleep(0.02)
    return {"n": len(items), "sum": sum(items), "items": list(items)}


@nalarc.tool
def describe(cfg):
    time.sleep(0.002 + 0.003 * (cfg.get("step", 0) % 7))
    return ",".join(f"{k}={cfg[k]}" for k in sorted(cfg))


@nalarc.tool
def make_box(x):
    time.sleep(0.004)
    return {"x": x, "log": [x]}


@nalarc.agent
class Archivist:
    def archive(self, rows):
        time.sleep(0.015)
        return [r[:] for r in rows]


@nalarc.workflow
def mutate(xs):
    buf = list(xs)
    snapshots = []
    for x in xs:
        snapshots.append(summarize(buf))
        buf.append(x * 10)
        buf[0] = -buf[0]
    cfg = {"step": 0}
    descs = []
    for i in range(3):
        cfg["step"] = i
        descs.append(describe(cfg))
        cfg["late"] = i  # mutates the dict the tool was just given
        cfg = dict(cfg, seen=i)
    box = make_box(xs[0])
    alias = box
    kept = copy.deepcopy(box)
    box["log"].append("mutated")
    after = summarize([len(alias["log"]), len(kept["log"])])
    rows = [[1, 2], [3]]
    archived = Archivist().archive(rows)
    rows[0].append(99)
    rows.append([7])
    return {"snapshots": [[s["n"], s["sum"], s["items"]] for s in snapshots], "buf": buf,
            "descs": descs, "alias_log": alias["log"], "kept": kept, "after": after,
            "archived": archived, "rows": rows}


CALLS = [
    ("mutate", {"xs": [1, 2, 3]}, "s1"),
    ("mutate", {"xs": [5]}, "s2"),
    ("mutate", {"xs": [4, 0]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
