"""An async travel planner: the async constructs mixed with classes, decorators and errors.

A mix in one ``async`` app: async tools for flights, hotels and weather, an
``async def`` retry decorator (``functools.wraps`` over a coroutine function, with
``await asyncio.sleep(0)`` between attempts) under ``@nalarc.tool``, an exception
hierarchy with custom ``__init__`` (``SoldOut(kind, city)``), an agent base class with
an async template method and two subclasses overriding an async hook with ``super()``,
a ``@property`` on the agent read on a handle, a dataclass itinerary with a
``@property`` total, ``asyncio.gather`` over agents, an async generator of daily plans
consumed by ``async for``, an ``asynccontextmanager`` budget guard whose exit checks
the total and raises, and ``asyncio.wait_for`` around the whole search.
"""

import asyncio
import contextlib
import dataclasses
import functools

import nalarc


class TravelError(Exception):
    pass


class SoldOut(TravelError):
    def __init__(self, kind, city):
        super().__init__(f"no {kind} left in {city}")
        self.kind = kind
        self.city = city


class OverBudget(TravelError):
    def __init__(self, total, budget):
        super().__init__(f"total {total} exceeds budget {budget}")
        self.total = total


class Glitch(TravelError):
    pass


def async_retry(times):
    def decorate(fn):
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):
            for attempt in range(times):
                try:
                    return await fn(*args, attempt=attempt, **kwargs)
                except Glitch:
                    if attempt == times - 1:
                        raise
                    await asyncio.sleep(0)
            raise AssertionError("unreachable")

        return wrapper

    return decorate


@nalarc.tool
@async_retry(3)
async def flights(origin, city, attempt=0):
    await asyncio.sleep(0.002 + 0.003 * (6 - len(city) % 7))
    if attempt < len(origin) % 2:
        raise Glitch(f"flight search glitched for {city}")
    return (len(origin) * 37 + len(city) * 11) % 400 + 100


@nalarc.tool
async def hotels(city, nights):
    await asyncio.sleep(0.001 + 0.002 * (len(city) % 4))
    if city == "Atlantis":
        raise SoldOut("hotels", city)
    return nights * ((len(city) * 23) % 90 + 60)


@nalarc.tool
async def weather(city, day):
    await asyncio.sleep(0.001 + 0.001 * (day % 3))
    return ["sun", "rain", "wind"][(len(city) + day) % 3]


@dataclasses.dataclass
class Itinerary:
    city: str
    flight: int
    hotel: int
    days: list = dataclasses.field(default_factory=list)

    @property
    def total(self):
        return self.flight + self.hotel


class PlannerBase:
    style = "standard"

    @property
    def label(self):
        return f"{self.style} planner"

    async def extras(self, city, nights):
        return {}

    async def plan(self, origin, city, nights):
        flight, hotel = await asyncio.gather(flights(origin, city), hotels(city, nights))
        extras = await self.extras(city, nights)
        return {"city": city, "flight": flight, "hotel": hotel, **extras}


@nalarc.agent
class BudgetPlanner(PlannerBase):
    style = "budget"

    async def extras(self, city, nights):
        base = await super().extras(city, nights)
        base["hostel_discount"] = nights * 10
        return base


@nalarc.agent
class LuxuryPlanner(PlannerBase):
    style = "luxury"

    async def extras(self, city, nights):
        base = await super().extras(city, nights)
        base["spa"] = (await weather(city, 0)) == "rain"
        return base


async def daily(city, nights):
    for day in range(nights):
        yield f"day {day + 1}: {await weather(city, day)}"


@contextlib.asynccontextmanager
async def budget_guard(itinerary, budget):
    yield itinerary
    if itinerary.total > budget:
        raise OverBudget(itinerary.total, budget)


@nalarc.workflow
async def compare(origin, cities, nights):
    planners = [BudgetPlanner(), LuxuryPlanner()]
    options = []
    for city in cities:
        try:
            options.append(await asyncio.wait_for(
                asyncio.gather(*(p.plan(origin, city, nights) for p in planners)), timeout=10))
        except SoldOut as exc:
            options.append([{"city": exc.city, "sold_out": exc.kind}])
    return {"labels": [p.label for p in planners], "options": options}


@nalarc.workflow
async def book(origin, city, nights, budget):
    plan = await BudgetPlanner().plan(origin, city, nights)
    trip = Itinerary(city, plan["flight"], plan["hotel"] - plan["hostel_discount"])
    async with budget_guard(trip, budget) as guarded:
        async for line in daily(city, nights):
            guarded.days.append(line)
    return {"total": trip.total, "days": trip.days}


CALLS = [
    ("compare", {"origin": "Zurich", "cities": ["Lisbon", "Atlantis", "Oslo"], "nights": 2}, "s1"),
    ("book", {"origin": "Rome", "city": "Kyoto", "nights": 3, "budget": 1000}, "s2"),
    ("book", {"origin": "Paris", "city": "Lima", "nights": 4, "budget": 300}, "s1"),
    ("book", {"origin": "Bern", "city": "Atlantis", "nights": 1, "budget": 900}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
