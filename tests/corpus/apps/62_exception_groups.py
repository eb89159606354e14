"""Exception groups: a batch validator that reports every failure at once.

Exercises: a helper that calls a tool per item, collects the failures and raises
``ExceptionGroup``; ``except*`` with two handler clauses (each sees the matching
sub-group; the rest re-raises), ``eg.exceptions``/``eg.subgroup``/``eg.split`` in a
plain ``except ExceptionGroup`` handler, a nested group, and an unhandled remainder
escaping the request (its message is the group's message and count).
"""

import time

import nalarc


class SchemaError(ValueError):
    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field = field


class MissingField(KeyError):
    pass


@nalarc.tool
def check_field(record, field):
    time.sleep(0.002 + 0.002 * (6 - len(field) % 7))
    if field not in record:
        raise MissingField(field)
    if not isinstance(record[field], int):
        raise SchemaError(field, f"expected int, got {type(record[field]).__name__}")
    return record[field]


def validate(record, fields):
    values, errors = {}, []
    for field in fields:
        try:
            values[field] = check_field(record, field)
        except (SchemaError, MissingField) as exc:
            errors.append(exc)
    if errors:
        raise ExceptionGroup(f"{len(errors)} invalid field(s)", errors)
    return values


@nalarc.workflow
def validate_star(record, fields):
    schema, missing = [], []
    try:
        return {"values": validate(record, fields)}
    except* SchemaError as group:
        schema = [e.field for e in group.exceptions]
    except* MissingField as group:
        missing = sorted(str(e) for e in group.exceptions)
    return {"schema": schema, "missing": missing}


@nalarc.workflow
def validate_plain(records, fields):
    report = []
    for record in records:
        try:
            report.append({"ok": validate(record, fields)})
        except ExceptionGroup as eg:
            schema, rest = eg.split(SchemaError)
            report.append({
                "message": str(eg),
                "count": len(eg.exceptions),
                "schema": None if schema is None else [str(e) for e in schema.exceptions],
                "rest": None if rest is None else [type(e).__name__ for e in rest.exceptions],
                "missing_only": eg.subgroup(MissingField) is not None,
            })
    return report


@nalarc.workflow
def nested(batches, fields):
    problems = []
    for i, batch in enumerate(batches):
        try:
            validate(batch, fields)
        except ExceptionGroup as eg:
            problems.append(eg)
    if problems:
        raise ExceptionGroup("batch failed", problems)
    return "all valid"


@nalarc.workflow
def only_schema(record, fields):
    outcome = "unchecked"
    try:
        outcome = validate(record, fields)
    except* SchemaError:
        outcome = "schema problems"
    return outcome


CALLS = [
    ("validate_star", {"record": {"a": 1, "b": "x", "d": 4}, "fields": ["a", "b", "c", "d", "e"]}, "s1"),
    ("validate_star", {"record": {"a": 1}, "fields": ["a"]}, "s1"),
    ("validate_plain", {"records": [{"a": 1, "b": 2}, {"a": "no"}, {"b": 3.5}], "fields": ["a", "b"]}, "s2"),
    ("nested", {"batches": [{"a": 1}, {"a": "x"}], "fields": ["a"]}, "s2"),
    ("nested", {"batches": [{"a": 1}], "fields": ["a"]}, "s1"),
    ("only_schema", {"record": {"a": 1}, "fields": ["a", "zz"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
