"""Shared pieces of the API routers: documented error answers and file downloads."""
from __future__ import annotations

from typing import Any, Iterator, Literal, Union

from fastapi.responses import Response, StreamingResponse

from web.schemas import Problem

ExportFormat = Literal["csv", "json"]


PROBLEMS = {
    400: "The request is understood but not acceptable (the message says why).",
    401: "The trainer token is missing or wrong.",
    403: "Changes are turned off: no write token is configured.",
    404: "No such item.",
    409: "Not possible in the station's current state (read-only rep log, no station running, duplicate).",
    422: "A malformed field; the message says which.",
    503: "Too many open at once (live views); try again after Retry-After seconds.",
    413: "The request body is over 64 KiB.",
    415: "A page form was posted with something else than form data.",
    421: "The Host header names something this station does not answer to (see web.allowed_hosts).",
    429: "This client asks faster than the station answers, or sent too many wrong tokens: wait Retry-After seconds.",
}
# What any request may meet before its route: the guard (web/guard.py), the per-client pacing and
# the sign-in limit (web/auth.py). Documented once, for every operation.
EVERYWHERE = (413, 415, 421, 429)


def everywhere_problems() -> dict[int | str, dict[str, Any]]:
    """EVERYWHERE's answers: JSON from the API, a page from the pages and their forms."""
    return {code: {"description": PROBLEMS[code], "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}},
        "text/html": {"schema": {"type": "string"}}}} for code in EVERYWHERE}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": PROBLEMS[code]} for code in codes}


def html_problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Errors the pages and their forms answer with a page that says what went wrong."""
    return {code: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": PROBLEMS[code]} for code in codes}


READ = problems(401)
WRITE = problems(401, 403, 409)


def download(body: Union[str, Iterator[str]], fmt: ExportFormat, filename: str) -> Response:
    """A file download: a whole body, or one streamed in pieces (a sync iterator runs in a worker thread)."""
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    headers = {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    if isinstance(body, str):
        return Response(body, media_type=media, headers=headers)
    return StreamingResponse(body, media_type=media, headers=headers)


def export_responses() -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
                  "description": "The export as a file download."}}
