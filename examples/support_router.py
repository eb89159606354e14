"""Support router: classify a ticket, then hand it to a billing or a tech agent.

A classifier tool picks the route while the customer record is fetched; the
billing agent looks up invoices; the tech agent fetches a knowledge-base
article per device and runs a diagnostics tool per device, retrying it (inside
try/except) when the probe times out.  Which probe attempts time out depends
only on the device and the attempt number, so every run gives the same answer.
The sleeps stand in for LLM and API latency.

Plain Python:

    python examples/support_router.py

Compiled by nalarc:

    nalarc run examples/support_router.py \
        --input '{"text": "Customer 4411: my router and printer drop the connection."}'
"""

import json
import time

import nalarc

CUSTOMERS = {"4411": {"name": "Ada", "plan": "fiber-500"}, "1002": {"name": "Lin", "plan": "dsl-50"}}
INVOICES = {"4411": [{"month": "2024-05", "amount": 49.0}, {"month": "2024-06", "amount": 98.0}]}
DEVICES = ("router", "printer", "modem", "laptop")
#: How many probe attempts time out before one succeeds, per device.
FLAKY = {"router": 2, "printer": 1}


class ProbeTimeout(Exception):
    pass


@nalarc.tool
def classify(text):
    time.sleep(0.15)  # a small classification model
    billing_words = ("invoice", "charge", "refund", "bill")
    return "billing" if any(w in text.lower() for w in billing_words) else "tech"


@nalarc.tool
def lookup_customer(text):
    time.sleep(0.15)  # the CRM
    ids = [word.strip(":,.") for word in text.split() if word.strip(":,.").isdigit()]
    cid = ids[0] if ids else "unknown"
    return {"id": cid, **CUSTOMERS.get(cid, {"name": "guest", "plan": "none"})}


@nalarc.tool(idempotent=True)
def run_diagnostics(device, attempt):
    time.sleep(0.1)  # a remote probe
    if attempt < FLAKY.get(device, 0):
        raise ProbeTimeout(f"{device}: probe timed out (attempt {attempt + 1})")
    return {"device": device, "status": "degraded" if device in FLAKY else "ok"}


@nalarc.tool
def kb_article(device):
    time.sleep(0.2)  # a knowledge-base search
    return f"kb/{device}-connectivity"


@nalarc.agent
class BillingAgent:
    def handle(self, text, customer):
        time.sleep(0.25)  # an LLM call
        invoices = INVOICES.get(customer["id"], [])
        last = invoices[-1] if invoices else None
        if last and len(invoices) > 1 and last["amount"] > invoices[-2]["amount"]:
            return f"Hi {customer['name']}, your {last['month']} invoice was higher; we refunded the difference."
        return f"Hi {customer['name']}, we found no billing problem."


@nalarc.agent
class TechAgent:
    def handle(self, text, customer):
        devices = [d for d in DEVICES if d in text.lower()]
        articles = [kb_article(d) for d in devices]
        results, timeouts = [], []
        for device in devices:
            for attempt in range(3):
                try:
                    results.append(run_diagnostics(device, attempt))
                    break
                except ProbeTimeout as exc:
                    timeouts.append(str(exc))
        time.sleep(0.25)  # an LLM call writes the reply
        bad = [r["device"] for r in results if r["status"] != "ok"]
        reply = f"Hi {customer['name']}, we reset your {' and '.join(bad) or 'devices'} remotely."
        return {"reply": reply, "articles": articles, "diagnostics": results, "timeouts": timeouts}


@nalarc.workflow
def handle_ticket(text: str):
    route = classify(text)
    customer = lookup_customer(text)
    if route == "billing":
        outcome = {"reply": BillingAgent().handle(text, customer)}
    else:
        outcome = TechAgent().handle(text, customer)
    return {"route": route, "customer": customer, **outcome}


if __name__ == "__main__":
    result = handle_ticket("Customer 4411: my router and printer drop the connection.")
    print(json.dumps(result, indent=2))
