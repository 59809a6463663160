"""The pages' forms: plain HTML posts, so every change works on any phone without JavaScript.

Each form runs the same action as its API twin, then sends the trainer back to the page with a
note (POST, redirect, GET); a rejected form shows the reason and changes nothing.
"""
from __future__ import annotations

from typing import Annotated, Any, Optional, TypeVar

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from web import actions
from web.auth import COOKIE, COOKIE_MAX_AGE_S, NO_TOKEN_HELP
from web.context import CorrectionId, RepId, SessionId, Writer, get_context
from web.schemas import AthleteIn, CorrectionIn, CuesIn, SettingsIn
from web.routers.common import html_problems
from web.templating import safe_next

router = APIRouter(tags=["page forms"])
Model = TypeVar("Model", bound=BaseModel)
FormText = Annotated[str, Form(max_length=2000)]
Next = Annotated[str, Form(max_length=2000, description="Where to go afterwards (a path on this page).")]
REDIRECT: dict[int | str, dict[str, Any]] = {303: {"description": "Done; go back to the page."}}
ERRORS = html_problems(400, 401, 403, 404, 409, 422)


def validated(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in err.errors())
        raise HTTPException(400, reasons) from None


def confirmed(confirm: str, what: str) -> None:
    """A delete form's tick box: without it, nothing is deleted and the page says why."""
    if confirm != "yes":
        raise HTTPException(400, f"tick the box to confirm {what}")


def back(target: str, saved: str, anchor: str = "") -> RedirectResponse:
    path, _, fragment = safe_next(target, "/").partition("#")
    joiner = "&" if "?" in path else "?"
    anchor = anchor or (f"#{fragment}" if fragment else "")
    return RedirectResponse(f"{path}{joiner}saved={saved}{anchor}", status_code=303)


@router.post("/login", response_class=Response, responses={**REDIRECT, **ERRORS})
def login(request: Request, token: FormText, next: Next = "/settings") -> Response:
    gate = get_context(request).gate
    if not gate.configured:
        raise HTTPException(403, NO_TOKEN_HELP)
    if not gate.check_token(request, token):
        raise HTTPException(401, "that is not the station's token; check web.token in the station config")
    response = back(next or "/settings", "signed_in")
    response.set_cookie(COOKIE, gate.cookie_value(), max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout", response_class=Response, responses={**REDIRECT, **ERRORS})
def logout() -> Response:
    response = back("/settings", "signed_out")
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/sessions/{session_id}/athlete", response_class=Response, responses={**REDIRECT, **ERRORS})
def label_session(ctx: Writer, session_id: SessionId, athlete: Annotated[str, Form(max_length=2000)],
                  next: Next = "") -> Response:
    # `athlete` is required: the form always sends it (empty clears the label); a post without it
    # is not that form and must not clear anything.
    body = validated(AthleteIn, {"athlete": athlete})
    actions.set_athlete(ctx, session_id, body.athlete)
    return back(next or f"/sessions/{session_id}", "athlete")


@router.post("/sessions/{session_id}/delete", response_class=Response, responses={**REDIRECT, **ERRORS})
def delete_session(ctx: Writer, session_id: SessionId, confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    confirmed(confirm, "deleting the session")
    actions.delete_session(ctx, session_id)
    return back("/history", "deleted")


@router.post("/reps/{rep_id}/corrections", response_class=Response, responses={**REDIRECT, **ERRORS})
def correct_rep(ctx: Writer, rep_id: RepId, kind: Annotated[str, Form(max_length=32)],
                fault: Annotated[str, Form(max_length=64)] = "", note: Annotated[str, Form(max_length=2000)] = "",
                next: Next = "") -> Response:
    body = validated(CorrectionIn, {"kind": kind, "fault": fault or None, "note": note})
    actions.add_correction(ctx, rep_id, body)
    rep = actions.read_back(ctx.store.get_rep(rep_id), f"rep {rep_id}")
    return back(next or f"/sessions/{rep['session_id']}", "correction", f"#rep-{rep['rep_index']}")


@router.post("/corrections/{correction_id}/delete", response_class=Response, responses={**REDIRECT, **ERRORS})
def withdraw_correction(ctx: Writer, correction_id: CorrectionId, next: Next = "") -> Response:
    actions.delete_correction(ctx, correction_id)
    return back(next or "/history", "undone")


@router.post("/settings/cues", response_class=Response, responses={**REDIRECT, **ERRORS})
async def change_cues(ctx: Writer, request: Request) -> Response:
    """The cue-words form: a `drill` field and one `cue_<fault>` field per fault the drill judges."""
    form = await request.form()
    drill = str(form.get("drill") or "")
    if not drill or len(drill) > 64:
        raise HTTPException(400, "the form names no drill")
    cues = {key[len("cue_"):]: str(value) for key, value in form.multi_items() if key.startswith("cue_")}
    body = validated(CuesIn, {"cues": cues})
    await run_in_threadpool(actions.set_cues, ctx, drill, body)
    return back("/settings", "cues", "#cues")


@router.post("/settings", response_class=Response, responses={**REDIRECT, **ERRORS})
def change_settings(ctx: Writer, profile: Annotated[Optional[str], Form(max_length=64)] = None,
                    buzzer: Annotated[Optional[str], Form(max_length=8)] = None,
                    voice: Annotated[Optional[str], Form(max_length=8)] = None,
                    athlete: Annotated[Optional[str], Form(max_length=2000)] = None) -> Response:
    data: dict[str, Any] = {}
    if profile:
        data["profile"] = profile
    if buzzer is not None:
        if buzzer not in ("on", "off"):
            raise HTTPException(400, "buzzer must be 'on' or 'off'")
        data["buzzer_enabled"] = buzzer == "on"
    if voice is not None:
        if voice not in ("on", "off"):
            raise HTTPException(400, "voice must be 'on' or 'off'")
        data["voice_enabled"] = voice == "on"
    if athlete is not None:
        data["athlete"] = athlete
    actions.apply_settings(ctx, validated(SettingsIn, data))
    return back("/settings", "athlete" if list(data) == ["athlete"] else "settings")
