"""A prompt-building and answer-parsing app on the standard text libraries.

Exercises: ``re`` (compiled patterns at module level, named groups, ``findall``,
``sub`` with a function, ``re.Match`` objects used in the workflow), ``textwrap``
(``dedent``, ``fill``, ``shorten``, ``indent``), ``string.Template`` with
``substitute`` (a missing key raises ``KeyError``) and ``safe_substitute``, ``json``
(a tool returns JSON text the workflow parses; a malformed reply raises
``json.JSONDecodeError`` that is caught), ``html.escape``, ``difflib.unified_diff``
and ``unicodedata.normalize`` inside tools and in the workflow.
"""

import difflib
import html
import json
import re
import string
import textwrap
import time
import unicodedata

import nalarc

CITATION = re.compile(r"\[(?P<source>[a-z]+):(?P<page>\d+)\]")
WORD = re.compile(r"\b\w+\b")

PROMPT = string.Template(textwrap.dedent("""\
    You are $role.
    Question: $question
    Context:
    $context
    """))


@nalarc.tool
def llm(prompt):
    time.sleep(0.002 + 0.003 * (9 - len(prompt) % 10))
    question = re.search(r"Question: (.*)", prompt).group(1)
    if "json" in question:
        if "broken" in question:
            return '{"answer": "unterminated'
        return json.dumps({"answer": question.title(), "words": len(WORD.findall(question))})
    return f"Per [docs:{len(question)}] and [wiki:3], {question} <maybe>."


@nalarc.tool
def revise(text):
    time.sleep(0.002)
    return CITATION.sub(lambda m: f"({m['source'].upper()} p.{int(m['page']) + 1})", text)


def build_prompt(question, snippets, role="a careful assistant"):
    context = textwrap.indent("\n".join(textwrap.shorten(s, width=24, placeholder="...") for s in snippets), "  ")
    return PROMPT.substitute(role=role, question=question, context=context)


@nalarc.workflow
def answer(question, snippets):
    prompt = build_prompt(question, snippets)
    reply = llm(prompt)
    cites = [m.groupdict() for m in CITATION.finditer(reply)]
    revised = revise(reply)
    diff = list(difflib.unified_diff(reply.split(", "), revised.split(", "), lineterm="", n=0))
    return {
        "prompt_lines": prompt.splitlines(),
        "cites": cites,
        "revised": revised,
        "html": html.escape(revised),
        "diff": diff[2:],
        "wrapped": textwrap.fill(revised, width=30).splitlines(),
    }


@nalarc.workflow
def structured(questions):
    out = []
    for q in questions:
        raw = llm(build_prompt(unicodedata.normalize("NFKC", q), []))
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError as exc:
            out.append({"bad_json_at": exc.pos, "msg": exc.msg})
    template = string.Template("$n answers for $who")
    return {"out": out, "title": template.safe_substitute(n=len(out))}


@nalarc.workflow
def missing_key(question):
    return PROMPT.substitute(question=question)


CALLS = [
    ("answer", {"question": "why do tides happen", "snippets": [
        "The moon's gravity pulls on the oceans, creating bulges on both sides.", "Sun: 46% of the effect."]}, "s1"),
    ("structured", {"questions": ["give json about ﬁsh", "broken json please", "plain question"]}, "s2"),
    ("missing_key", {"question": "x"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
