"""Escaping user text (component, argument, session names) for every format.

Names come from the app and the trace, so they may hold anything: quotes,
brackets, ``<script>``, newlines, terminal escapes.  :func:`clean` first
makes a name one visible line; each format then quotes it its own way.
"""

from __future__ import annotations

import json
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean(text: str) -> str:
    """One printable line: control, format and separator characters become ``\\n``-style escapes."""
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn") and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


def dot_escape(text: str) -> str:
    """The inside of a DOT double-quoted string (an escString: backslashes are escapes too)."""
    return clean(text).replace("\\", "\\\\").replace('"', '\\"')


def dot_quote(text: str) -> str:
    return f'"{dot_escape(text)}"'


def dot_lines(lines: list[str]) -> str:
    """A quoted DOT label of several centered lines."""
    return '"' + "\\n".join(dot_escape(line) for line in lines) + '"'


_MERMAID_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.,:/=+*?!@$%^~'")


def mermaid_escape(text: str) -> str:
    """Mermaid label text: everything but plain characters becomes an entity code (``#34;``).

    Mermaid decodes ``#<decimal>;`` in labels, so quotes, brackets, pipes,
    ``<``/``>`` (HTML labels) and ``#`` itself can never end a label early
    or inject markup.
    """
    out = []
    for ch in clean(text):
        if ch in _MERMAID_SAFE or (ch.isalnum() and ord(ch) > 127):
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def json_for_script(data: object) -> str:
    """JSON that is safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
