"""A customer-support desk written the way an application developer would write it.

A mix of the constructs above in one app: an ``Enum`` of intents, a frozen dataclass
for tickets, an exception hierarchy with custom ``__init__`` (``EscalationNeeded``
carries the ticket and the reason), a retry decorator with arguments on a tool, an
``lru_cache`` helper, a base agent class with a ``@property`` and a template method,
two agent subclasses that override a hook and call ``super()``, a ``@classmethod``
factory choosing the agent from the intent, a generator that streams replies for a
batch of tickets (consumed with ``islice``), a ``@contextmanager`` that records the
handling time on a fake clock, and an escalation that escapes the last request.
"""

import contextlib
import dataclasses
import enum
import functools
import itertools
import re
import time

import nalarc


class Intent(enum.Enum):
    BILLING = "billing"
    OUTAGE = "outage"
    OTHER = "other"


@dataclasses.dataclass(frozen=True)
class Ticket:
    ident: int
    customer: str
    text: str

    @property
    def words(self):
        return re.findall(r"[a-z']+", self.text.lower())


class DeskError(Exception):
    pass


class EscalationNeeded(DeskError):
    def __init__(self, ticket_id, reason):
        super().__init__(f"ticket {ticket_id} needs a human: {reason}")
        self.ticket_id = ticket_id
        self.reason = reason


class Flaky(DeskError):
    def __init__(self, service, attempt):
        super().__init__(f"{service} flaked on attempt {attempt}")
        self.attempt = attempt


def retry(times):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return fn(*args, attempt=attempt, **kwargs)
                except Flaky:
                    if attempt == times - 1:
                        raise
            raise AssertionError("unreachable")

        return wrapper

    return decorate


@functools.lru_cache(maxsize=32)
def keywords(intent):
    return {"billing": ("invoice", "charge", "refund"), "outage": ("down", "error", "offline")}.get(intent, ())


@nalarc.tool
def classify(text):
    time.sleep(0.002 + 0.003 * (9 - len(text) % 10))
    words = set(re.findall(r"[a-z']+", text.lower()))
    for intent in (Intent.BILLING, Intent.OUTAGE):
        if words & set(keywords(intent.value)):
            return intent
    return Intent.OTHER


@nalarc.tool
@retry(3)
def account_status(customer, attempt=0):
    time.sleep(0.002 + 0.002 * (len(customer) % 4))
    if attempt < len(customer) % 3:
        raise Flaky("accounts", attempt)
    return {"customer": customer, "plan": "pro" if len(customer) > 4 else "free", "attempts": attempt + 1}


@nalarc.tool
def write_reply(name, ticket, facts):
    time.sleep(0.001 + 0.002 * (ticket.ident % 4))
    return f"[{name}] #{ticket.ident} {ticket.customer}: " + "; ".join(f"{k}={facts[k]}" for k in sorted(facts))


class FakeClock:
    def __init__(self):
        self.now = 0

    def tick(self, n):
        self.now += n
        return self.now


@contextlib.contextmanager
def handling(clock, log, ticket):
    start = clock.tick(1)
    try:
        yield
    finally:
        log.append([ticket.ident, clock.tick(len(ticket.words)) - start])


class BaseAgent:
    name = "agent"

    @property
    def signature(self):
        return f"{self.name} ({type(self).__name__})"

    def facts(self, ticket):
        return {"plan": account_status(ticket.customer)["plan"]}

    def handle(self, ticket):
        facts = self.facts(ticket)
        return write_reply(self.signature, ticket, facts)


@nalarc.agent
class BillingAgent(BaseAgent):
    name = "billing"

    def facts(self, ticket):
        facts = super().facts(ticket)
        facts["refund"] = "refund" in ticket.words
        return facts


@nalarc.agent
class OutageAgent(BaseAgent):
    name = "outage"

    def facts(self, ticket):
        facts = super().facts(ticket)
        if facts["plan"] == "free" and "offline" in ticket.words:
            raise EscalationNeeded(ticket.ident, "free plan offline")
        facts["status_page"] = True
        return facts


@nalarc.agent
class GeneralAgent(BaseAgent):
    name = "general"


class Router:
    agents = {Intent.BILLING: BillingAgent, Intent.OUTAGE: OutageAgent}

    @classmethod
    def for_intent(cls, intent):
        return cls.agents.get(intent, GeneralAgent)()


def replies(tickets, clock, log):
    for ticket in tickets:
        with handling(clock, log, ticket):
            yield Router.for_intent(classify(ticket.text)).handle(ticket)


def tickets_from(raw):
    return [Ticket(i, c, t) for i, (c, t) in enumerate(raw, start=100)]


@nalarc.workflow
def triage(raw, limit):
    clock, log = FakeClock(), []
    tickets = tickets_from(raw)
    answered = []
    escalated = []
    stream = replies(tickets, clock, log)
    while len(answered) + len(escalated) < limit:
        try:
            answered.append(next(stream))
        except EscalationNeeded as exc:
            escalated.append({"id": exc.ticket_id, "reason": exc.reason})
            stream = replies(tickets[len(answered) + len(escalated):], clock, log)
        except StopIteration:
            break
    return {"answered": answered, "escalated": escalated, "timing": log,
            "after_two": list(itertools.islice(replies(tickets[2:], FakeClock(), []), 2))}


@nalarc.workflow
def single(customer, text):
    ticket = Ticket(1, customer, text)
    return Router.for_intent(classify(text)).handle(ticket)


CALLS = [
    ("triage", {"raw": [["alice", "I was charged twice, please refund"], ["bob", "The site is down and offline"],
                        ["carol", "How do I change my avatar?"], ["dmitri", "error on the invoice page"]],
                "limit": 4}, "s1"),
    ("triage", {"raw": [["eve", "hello"]], "limit": 3}, "s2"),
    ("single", {"customer": "zoe", "text": "everything is offline"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
