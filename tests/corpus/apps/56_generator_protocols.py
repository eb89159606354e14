"""The rest of the generator protocol, in a conversation-memory app.

Exercises: a coroutine-style generator driven with ``send()`` (primed with ``next``)
whose body calls a tool per received message; a sub-generator's ``return`` value
captured by ``result = yield from sub()``; ``try``/``finally`` in a generator that
runs when the consumer stops early (``contextlib.closing``, or ``zip(strict=True)``
running it to the end; recorded in a list the workflow owns); ``itertools.takewhile``/``chain.from_iterable``/``accumulate`` over
generators of tool results; ``dict(...)`` and ``sorted(...)`` of generators;
``zip`` of two generators; ``any`` short-circuiting before a tool that would raise.
"""

import contextlib
import itertools
import time

import nalarc


@nalarc.tool
def summarize(history, message):
    time.sleep(0.002 + 0.003 * (7 - len(message) % 8))
    return f"{len(history)}:{message[:4]}"


@nalarc.tool
def score(word):
    time.sleep(0.001 + 0.002 * (len(word) % 4))
    if word == "boom":
        raise RuntimeError("score exploded on 'boom'")
    return len(word) * (2 if word[0] in "aeiou" else 1)


def memory():
    history = []
    summary = None
    while True:
        message = yield summary
        if message is None:
            return history
        summary = summarize(history, message)
        history.append(summary)


def scores(words, events):
    try:
        for w in words:
            yield score(w)
    finally:
        events.append(f"closed after {len(words)} words")


def tally(words):
    total = 0
    for w in words:
        total += yield score(w)
    return total


def outer(words):
    result = yield from tally(words)
    yield ("total", result)


@nalarc.workflow
def chat(messages):
    mem = memory()
    next(mem)
    replies = [mem.send(m) for m in messages]
    try:
        mem.send(None)
    except StopIteration as stop:
        history = stop.value
    return {"replies": replies, "history": history}


@nalarc.workflow
def analyze(words):
    events = []
    with contextlib.closing(scores(words, events)) as gen:
        small = list(itertools.takewhile(lambda s: s < 6, gen))
    flat = list(itertools.chain.from_iterable(scores([w, w], events) for w in words[:2]))
    running = list(itertools.accumulate(scores(words[:3], events)))
    by_word = dict((w, s) for w, s in zip(words[:4], scores(words[:4], events), strict=True))
    ranked = sorted(scores(words[:3], events), reverse=True)
    with contextlib.closing(scores(words, events)) as gen:
        has_long = any(s > 4 for s in gen)
    return {"small": small, "flat": flat, "running": running, "by_word": by_word,
            "ranked": ranked, "has_long": has_long, "events": events}


@nalarc.workflow
def delegate(words):
    gen = outer(words)
    values = []
    value = next(gen)
    while not isinstance(value, tuple):
        values.append(value)
        value = gen.send(value * 10)
    return {"values": values, "final": list(value)}


CALLS = [
    ("chat", {"messages": ["hello there", "how are tides", "bye"]}, "s1"),
    ("analyze", {"words": ["tide", "sea", "ocean", "x", "boom"]}, "s1"),
    ("analyze", {"words": ["a", "boom"]}, "s2"),
    ("delegate", {"words": ["sea", "air", "moonlight"]}, "s2"),
    ("chat", {"messages": []}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
