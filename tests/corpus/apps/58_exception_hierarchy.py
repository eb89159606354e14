"""An LLM-client exception hierarchy with custom ``__init__``s, caught by base class.

Exercises: ``class LLMError(Exception)`` with subclasses whose ``__init__`` take other
arguments than the message (``RateLimited(model, wait)``, ``ContextTooLong(tokens,
limit)``, ``ContentFiltered(category, *, severity)``), raised in tools and caught in the
workflow by the base class, by an intermediate class and by a tuple; attributes
(``exc.model``, ``exc.wait``) read in the handler to pick a fallback; ``isinstance``
of the caught exception; ``exc.args``; handler order (subclass before base);
an exception escaping the request with its formatted message.
"""

import time

import nalarc


class LLMError(Exception):
    """Base class of every model-call failure."""


class RetryableError(LLMError):
    pass


class RateLimited(RetryableError):
    def __init__(self, model, wait):
        super().__init__(f"{model} is rate limited, retry in {wait}s")
        self.model = model
        self.wait = wait


class Overloaded(RetryableError):
    def __init__(self, model):
        super().__init__(model)
        self.model = model

    def __str__(self):
        return f"{self.model} overloaded"


class ContextTooLong(LLMError):
    def __init__(self, tokens, limit):
        super().__init__(tokens, limit)
        self.tokens = tokens
        self.limit = limit

    def __str__(self):
        return f"{self.tokens} tokens > limit {self.limit}"


class ContentFiltered(LLMError):
    def __init__(self, category, *, severity=1):
        super().__init__(f"filtered: {category} (severity {severity})")
        self.category = category
        self.severity = severity


LIMITS = {"small": 12, "large": 40}


@nalarc.tool
def chat(model, prompt):
    time.sleep(0.002 + 0.003 * (9 - len(prompt) % 10))
    tokens = len(prompt.split()) * 3
    if "violence" in prompt:
        raise ContentFiltered("violence", severity=3)
    if model == "busy":
        raise Overloaded(model)
    if tokens > LIMITS.get(model, 20):
        raise ContextTooLong(tokens, LIMITS.get(model, 20))
    if len(prompt) % 5 == 0:
        raise RateLimited(model, len(prompt) // 5)
    return f"{model}: {prompt[::-1]}"


@nalarc.workflow
def ask(prompts, model):
    answers = []
    for prompt in prompts:
        try:
            answers.append({"ok": chat(model, prompt)})
        except RateLimited as exc:
            answers.append({"retry": exc.wait, "model": exc.model, "fallback": chat("large", prompt + "!")})
        except RetryableError as exc:
            answers.append({"retryable": str(exc), "kind": type(exc).__name__})
        except ContextTooLong as exc:
            answers.append({"too_long": [exc.tokens, exc.limit], "args": list(exc.args)})
        except LLMError as exc:
            answers.append({"llm": str(exc), "filtered": isinstance(exc, ContentFiltered),
                            "severity": getattr(exc, "severity", None)})
    return answers


@nalarc.workflow
def ask_once(prompt, model):
    try:
        return chat(model, prompt)
    except (RateLimited, Overloaded) as exc:
        return {"gave_up": str(exc), "base": isinstance(exc, LLMError)}


CALLS = [
    ("ask", {"prompts": ["hello", "tell me a story", "one two three four five", "violence now",
                         "short q"], "model": "small"}, "s1"),
    ("ask", {"prompts": ["abcd", "x"], "model": "busy"}, "s2"),
    ("ask_once", {"prompt": "abcde", "model": "small"}, "s1"),
    ("ask_once", {"prompt": "many many many many many many words here", "model": "small"}, "s2"),
    ("ask_once", {"prompt": "a violence b", "model": "large"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
