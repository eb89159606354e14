"""A billing and scheduling assistant on datetime, zoneinfo, decimal, fractions, statistics, dateutil.

Exercises: ``datetime``/``timedelta`` arithmetic on fixed timestamps (never ``now()``),
``zoneinfo.ZoneInfo`` conversions across a DST change, ``isoformat``/``fromisoformat``
round trips through tools; ``decimal.Decimal`` with a local context and
``quantize(ROUND_HALF_EVEN)`` for invoices (returned as strings), ``fractions.Fraction``
for exact splits, ``statistics.mean``/``median``/``pstdev``; ``dateutil.parser.isoparse``,
``dateutil.relativedelta`` (month ends) and ``dateutil.rrule`` (a weekly schedule) in a
tool; a ``decimal.InvalidOperation`` from a malformed amount escaping.
"""

import datetime as dt
import decimal
import statistics
import time
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from dateutil import parser as dateparser
from dateutil import rrule
from dateutil.relativedelta import relativedelta

import nalarc

UTC = dt.timezone.utc
CENT = Decimal("0.01")


@nalarc.tool
def usage(account, day):
    time.sleep(0.002 + 0.003 * (6 - len(account) % 7))
    start = dt.datetime.fromisoformat(day)
    return [{"at": (start + dt.timedelta(hours=5 * i)).isoformat(), "units": str(Decimal(len(account) * i) / 3)}
            for i in range(4)]


@nalarc.tool
def price(units, plan):
    time.sleep(0.001 + 0.002 * (len(plan) % 3))
    with decimal.localcontext() as ctx:
        ctx.prec = 12
        rate = {"basic": Decimal("0.125"), "pro": Decimal("0.0875")}[plan]
        return str((Decimal(units) * rate).quantize(CENT, rounding=ROUND_HALF_EVEN))


@nalarc.tool
def schedule(start, weeks, tz):
    time.sleep(0.002)
    first = dateparser.isoparse(start).replace(tzinfo=ZoneInfo(tz))
    rule = rrule.rrule(rrule.WEEKLY, dtstart=first, count=weeks)
    return [d.astimezone(UTC).isoformat() for d in rule]


@nalarc.workflow
def invoice(account, day, plan, people):
    events = usage(account, day)
    amounts = [Decimal(price(e["units"], plan)) for e in events]
    total = sum(amounts, Decimal(0))
    share = Fraction(total) / people
    hours = [dt.datetime.fromisoformat(e["at"]).hour for e in events]
    period_end = dt.date.fromisoformat(day[:10]) + relativedelta(day=31)
    return {
        "amounts": [str(a) for a in amounts],
        "total": str(total),
        "share": [share.numerator, share.denominator],
        "share_cents": round(share * 100),
        "mean_hour": statistics.mean(hours),
        "median_units": str(statistics.median(Decimal(e["units"]) for e in events)),
        "spread": round(statistics.pstdev(float(a) for a in amounts), 4),
        "period_end": period_end.isoformat(),
        "next_bill": (period_end + relativedelta(months=1, day=31)).isoformat(),
    }


@nalarc.workflow
def meetings(start, weeks, tz):
    slots = schedule(start, weeks, tz)
    local = [dt.datetime.fromisoformat(s).astimezone(ZoneInfo(tz)) for s in slots]
    return {"utc": slots, "local_hours": [d.hour for d in local], "offsets": sorted({d.strftime("%z") for d in local}),
            "span_days": (local[-1] - local[0]).days if local else 0}


@nalarc.workflow
def bad_amount(units):
    return price(units, "basic")


CALLS = [
    ("invoice", {"account": "acme-corp", "day": "2024-02-10T01:30:00", "plan": "pro", "people": 3}, "s1"),
    ("invoice", {"account": "bo", "day": "2023-11-30T22:00:00", "plan": "basic", "people": 7}, "s2"),
    ("meetings", {"start": "2024-03-01T09:00:00", "weeks": 6, "tz": "Europe/Berlin"}, "s1"),
    ("meetings", {"start": "2024-10-25T17:30:00", "weeks": 3, "tz": "America/New_York"}, "s2"),
    ("bad_amount", {"units": "12,5"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
