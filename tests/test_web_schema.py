"""Schemathesis over the page's OpenAPI schema, in-process against the ASGI app on a real rep log
with a live station: whatever it sends (with the write token, so writes are reached too), the
page never answers 5xx and every answer matches the schema.

Random ids mostly miss; so half of the generated ids are swapped for ids that exist in the rep
log, and the fuzzer reaches real sessions, reps and corrections with everything else fuzzed.
The live event stream is left out: it is endless by design (tested with a real server instead).
"""
from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from support.web import AUTH, make_app

MAX_EXAMPLES = 40  # per operation: reaches the branches of bad input and stays a few seconds
ENDLESS = {("GET", "/api/live/events")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def aim(case, pools):
    for name, pool in pools.items():
        value = (case.path_parameters or {}).get(name)
        if isinstance(value, int) and value % 2 == 0 and pool:
            case.path_parameters[name] = pool[value // 2 % len(pool)]


def test_no_input_gives_a_server_error_or_breaks_the_schema(station):
    reps = [r["id"] for s in station.store.list_sessions(limit=1000) for r in station.store.session_reps(s["id"])]
    corrections = [station.store.add_correction(rep_id, "not_a_rep") for rep_id in reps[:5]]
    pools = {"session_id": [s["id"] for s in station.store.list_sessions(limit=1000)], "rep_id": reps,
             "correction_id": corrections, "athlete_id": [a["id"] for a in station.store.list_athletes()]}
    app = make_app(station.store, live=station.live, controls=station.controls, page_cpu_share=None)  # fuzz at full speed
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    failures, tried = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in ENDLESS:
            continue
        tried.append(f"{operation.method.upper()} {operation.path}")

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            aim(case, pools)
            case.call_and_validate(headers=AUTH, checks=CHECKS)

        try:
            fuzz()
        except Exception as err:  # gather every operation's failure, then report them together
            failures.append(f"{tried[-1]}: {err}")
    assert len(tried) >= 20, tried  # the whole API was reached, not a stray subset
    assert not failures, "\n\n".join(failures)
