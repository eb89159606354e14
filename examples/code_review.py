"""Code review: lint and review every changed file, then sort the findings by severity.

For each changed file a ``lint`` tool and a ``Reviewer`` agent (an LLM, here
simulated) look at the source; the findings are collected with a dict
comprehension and sorted with a ``severity`` tool as the key.  The files come
from a small in-memory checkout, so every run gives the same report.  The
sleeps stand in for linter and LLM latency.

Plain Python:

    python examples/code_review.py

Compiled by nalarc, the files are linted and reviewed in parallel:

    nalarc run examples/code_review.py \
        --input '{"files": ["app/api.py", "app/db.py", "README.md"]}'
"""

import json
import time

import nalarc

CHECKOUT = {
    "app/api.py": "import os\ndef handler(req):\n    password = 'hunter2'\n    return eval(req.body)\n",
    "app/db.py": "def query(conn, name):\n    return conn.execute(f\"SELECT * FROM t WHERE n = '{name}'\")\n",
    "README.md": "# Service\nTODO: document the API\n",
}
LEVELS = {"error": 0, "warning": 1, "note": 2}


@nalarc.tool
def lint(path):
    time.sleep(0.1)  # a linter subprocess
    findings = []
    for number, line in enumerate(CHECKOUT.get(path, "").splitlines(), start=1):
        if line.startswith("import ") and path.endswith(".py"):
            findings.append({"file": path, "line": number, "level": "note", "text": f"unused {line[7:]}"})
        if "TODO" in line:
            findings.append({"file": path, "line": number, "level": "note", "text": "unresolved TODO"})
    return findings


@nalarc.agent
class Reviewer:
    def review(self, path):
        time.sleep(0.25)  # an LLM call
        findings = []
        for number, line in enumerate(CHECKOUT.get(path, "").splitlines(), start=1):
            if "eval(" in line:
                findings.append({"file": path, "line": number, "level": "error", "text": "eval of user input"})
            if "password =" in line:
                findings.append({"file": path, "line": number, "level": "warning", "text": "hard-coded secret"})
            if "SELECT" in line and "{" in line:
                findings.append({"file": path, "line": number, "level": "error", "text": "SQL injection"})
        return findings


@nalarc.tool
def severity(finding):
    time.sleep(0.05)  # a policy service
    return (LEVELS[finding["level"]], finding["file"], finding["line"])


@nalarc.workflow
def review_change(files: list):
    reviewer = Reviewer()
    lints = {path: lint(path) for path in files}
    reviews = {path: reviewer.review(path) for path in files}
    per_file = {path: lints[path] + reviews[path] for path in files}
    findings = [finding for path in files for finding in per_file[path]]
    ordered = sorted(findings, key=lambda f: severity(f))
    counts = {level: sum(1 for f in findings if f["level"] == level) for level in LEVELS}
    return {
        "verdict": "request changes" if counts["error"] else "approve",
        "counts": counts,
        "findings": [f"{f['level']}: {f['file']}:{f['line']}: {f['text']}" for f in ordered],
    }


if __name__ == "__main__":
    result = review_change(["app/api.py", "app/db.py", "README.md"])
    print(json.dumps(result, indent=2))
