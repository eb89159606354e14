"""Financial analyst (the paper's first workload): fan out to four kinds of agents, then summarize.

For each question about a set of tickers, a stock agent analyses every ticker, a
news agent searches news for every ticker, a bond agent reads the rate outlook
and a market-research agent the sector, all at once; the analyst then writes
the answer.  The analyst keeps the session's conversation in a ManagedList, so
a follow-up question ("and if rates rise?") sees the earlier turns, and its
long portfolio prompt is a KV-cache hit on the instance that served the
session before.  Every LLM call goes to ``nalarc.llm.chat``: a real
OpenAI-compatible endpoint when ``OPENAI_BASE_URL`` is set, otherwise a
simulated GPU per agent instance.

Plain Python, one call after another:

    python examples/financial_analyst.py

Served by nalarc under an open-loop load of sessions with follow-ups (the
``workload`` function below), with a latency table at the end:

    nalarc run examples/financial_analyst.py --rate 3 --duration 20
"""

import json
import os
import random

import nalarc
from nalarc.llm import chat
from nalarc.workloads import Session, poisson_times, workload

# Simulated GPUs run 10x faster than real ones unless NALARC_LLM_TIME_SCALE says otherwise.
os.environ.setdefault("NALARC_LLM_TIME_SCALE", "10")

PORTFOLIO = (
    "Client portfolio and mandate: long-term growth with moderate risk; 60 percent equities "
    "across technology, energy, healthcare and consumer staples; 30 percent investment-grade "
    "bonds laddered from 2 to 10 years; 10 percent cash.  Rebalance quarterly; no single stock "
    "above 8 percent; avoid leverage.  "
) * 24  # about 2,000 tokens: the analyst's long, shared prefix
TICKERS = ("AAPL", "MSFT", "NVDA", "XOM", "JNJ", "KO", "TSLA", "AMZN")
QUESTIONS = (
    "Should I rebalance toward {tickers} this quarter?",
    "How exposed is the portfolio to {tickers} if rates stay high?",
    "Compare the outlook for {tickers} against our bond ladder.",
)
FOLLOW_UPS = ("And if rates rise by half a point?", "What is the downside in a recession?", "Summarize in one line.")


def ask(model, instruction, max_tokens=None):
    return chat([{"role": "system", "content": f"You are the {model} analyst."},
                 {"role": "user", "content": instruction}], model=model, max_tokens=max_tokens)


@nalarc.agent(min_instances=1, max_instances=4)
class StockAgent:
    def analyze(self, ticker, question):
        return {"ticker": ticker, "view": ask("stock", f"Fundamentals and price action of {ticker}. {question}", 400)}


@nalarc.agent(min_instances=1, max_instances=4)
class NewsAgent:
    def search(self, ticker):
        return {"ticker": ticker, "headlines": ask("news", f"Latest news that moves {ticker}.", max_tokens=80)}


@nalarc.agent(min_instances=1, max_instances=4)
class BondAgent:
    def outlook(self, question):
        return ask("bonds", f"Yield curve and duration risk. {question}", 400)


@nalarc.agent(min_instances=1, max_instances=4)
class MarketResearch:
    def sectors(self, tickers):
        return ask("market", f"Sector rotation for {', '.join(tickers)}.", 400)


@nalarc.agent(min_instances=1, max_instances=4)
class Analyst:
    conversation = nalarc.ManagedList()

    def answer(self, question, stocks, news, bonds, market):
        turns = "\n".join(self.conversation)
        notes = "\n".join([*(s["view"] for s in stocks), *(n["headlines"] for n in news), bonds, market])
        reply = chat([{"role": "system", "content": PORTFOLIO},
                      {"role": "user", "content": f"Earlier turns:\n{turns}\nResearch:\n{notes}\nQuestion: {question}"}],
                     model="analyst", max_tokens=160)
        self.conversation.append(f"Q: {question} A: {reply[:80]}")
        return {"answer": reply, "turn": len(self.conversation)}


@nalarc.workflow
def advise(question: str, tickers: list):
    stocks = [StockAgent().analyze(t, question) for t in tickers]
    news = [NewsAgent().search(t) for t in tickers]
    bonds = BondAgent().outlook(question)
    market = MarketResearch().sectors(tickers)
    written = Analyst().answer(question, stocks, news, bonds, market)
    return {"question": question, "tickers": tickers, **written}


@workload
def workload(rate: float, duration: float, seed: int = 0):
    """Sessions arrive as a Poisson process; each asks a question, then 0-3 follow-ups after think time."""
    rng = random.Random(seed)
    for index, at in enumerate(poisson_times(rate / 2.5, duration, rng)):  # sessions average 2.5 requests
        tickers = rng.sample(TICKERS, rng.randint(2, 3))
        first = rng.choice(QUESTIONS).format(tickers=" and ".join(tickers))
        questions = [first, *rng.sample(FOLLOW_UPS, rng.randint(0, 3))]
        yield Session(f"client-{index}", at,
                             [{"question": q, "tickers": tickers} for q in questions],
                             think=rng.uniform(0.5, 2.0))


if __name__ == "__main__":
    with nalarc.session("client-1"):
        for question in ("Should I rebalance toward NVDA and XOM this quarter?", FOLLOW_UPS[0]):
            print(json.dumps(advise(question, ["NVDA", "XOM"]), indent=2))
