"""Shared pieces of the API routers: documented error answers and file downloads."""
from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import Response

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
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": PROBLEMS[code]} for code in codes}


def html_problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Errors the pages and their forms answer with a page that says what went wrong."""
    return {code: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": PROBLEMS[code]} for code in codes}


READ = problems(401)
WRITE = problems(401, 403, 409)


def download(body: str, fmt: ExportFormat, filename: str) -> Response:
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'})


def export_responses() -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
                  "description": "The export as a file download."}}
