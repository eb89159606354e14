"""Per-session managed state across requests.

Exercises: ``ManagedList`` and ``ManagedDict`` class attributes, state that
survives across requests of one session while another session's requests are
interleaved, program-order appends where later calls finish first, reading
state after writes in the same request, ``current_session()`` inside an
agent method, agent methods calling tools.
"""

import time

import nalarc


@nalarc.tool
def normalize(text):
    time.sleep(0.002 + 0.004 * (7 - len(text) % 8))
    return text.strip().lower()


@nalarc.agent
class Memory:
    history = nalarc.ManagedList()
    counts = nalarc.ManagedDict()

    def remember(self, text):
        # Earlier messages (longer sleep) must still land first.
        time.sleep(0.03 - 0.004 * min(len(self.history), 6))
        word = normalize(text)
        self.history.append(word)
        self.counts[word] = self.counts.get(word, 0) + 1
        return len(self.history)

    def recall(self, last=3):
        time.sleep(0.002)
        return {"session": nalarc.current_session(), "last": self.history[-last:],
                "counts": dict(sorted(self.counts.items()))}

    def forget(self, word):
        time.sleep(0.005)
        before = len(self.history)
        self.history[:] = [w for w in self.history if w != word]
        self.counts.pop(word, None)
        return before - len(self.history)


@nalarc.workflow
def chat(messages):
    m = Memory()
    sizes = [m.remember(msg) for msg in messages]
    return {"sizes": sizes, "state": m.recall()}


@nalarc.workflow
def prune(word):
    removed = Memory().forget(word)
    return {"removed": removed, "state": Memory().recall(last=10)}


CALLS = [
    ("chat", {"messages": ["Hello ", "World", "hello"]}, "alice"),
    ("chat", {"messages": ["Other", "session"]}, "bob"),
    ("chat", {"messages": [" again", "HELLO"]}, "alice"),
    ("prune", {"word": "hello"}, "alice"),
    ("prune", {"word": "missing"}, "bob"),
    ("chat", {"messages": ["x"]}, "carol"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
