"""``python -m nalarc.worker SOCKET ID``: one worker process (the secret comes on standard input)."""

from __future__ import annotations

from ._main import main

if __name__ == "__main__":
    main()
