"""``python -m nalarc``: the same as the ``nalarc`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main()
