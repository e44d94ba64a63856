"""Schemathesis hooks for `api/tests/api/schemathesis.rs` (the API fuzzed against its own document).

- `to` before `from` is a 400 the document cannot express (a constraint between two
  parameters): such generated ranges are put in order, so that schema-valid requests stay valid.
- Every error response must be `{"error": "<text>"}` JSON, whatever the status.
"""

import re

import schemathesis

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@schemathesis.hook
def map_query(ctx, query):
    if isinstance(query, dict):
        first, last = query.get("from"), query.get("to")
        if (
            isinstance(first, str)
            and isinstance(last, str)
            and DATE.match(first)
            and DATE.match(last)
            and last < first
        ):
            query["from"], query["to"] = last, first
    return query


@schemathesis.check
def errors_are_json(ctx, response, case):
    if response.status_code < 400:
        return True
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    if not content_type.startswith("application/json"):
        raise AssertionError(
            f"{response.status_code} answered with content-type {content_type!r}, not JSON"
        )
    body = response.json()
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], str):
        raise AssertionError(f"{response.status_code} body is not {{\"error\": \"...\"}}: {body!r}")
    return True
