"""/api/settings: the running station's drill, buzzer and athlete label, and each drill's cue words."""
from __future__ import annotations

from fastapi import APIRouter, Request

from web import actions
from web.context import Reader, WebContext, Writer
from web.schemas import CuesIn, CuesOut, SettingsIn, SettingsOut
from web.routers.common import WRITE, problems

router = APIRouter(prefix="/api/settings", tags=["settings"])


def current_settings(ctx: WebContext, request: Request) -> SettingsOut:
    snap = ctx.live.snapshot()[1] if ctx.live is not None else None
    session = ctx.store.get_session(snap.session_id) if snap is not None and snap.session_id is not None else None
    return SettingsOut(
        station_running=ctx.controls is not None and snap is not None,
        profile=snap.profile if snap is not None else None, profiles=list(ctx.profiles),
        buzzer_enabled=snap.buzzer_enabled if snap is not None else None,
        voice_enabled=snap.voice_enabled if snap is not None else None,
        session_id=snap.session_id if snap is not None else None,
        athlete=session["athlete"] if session is not None else None,
        can_write=ctx.gate.authenticated(request),
        writes_enabled=ctx.gate.configured and not ctx.store.readonly,
    )


@router.get("", response_model=SettingsOut, responses=problems(401))
def get_settings(ctx: Reader, request: Request) -> SettingsOut:
    return current_settings(ctx, request)


@router.put("", response_model=SettingsOut, responses={**WRITE, **problems(400)})
def put_settings(ctx: Writer, request: Request, body: SettingsIn) -> SettingsOut:
    """Change any of drill profile, buzzer, and the running session's athlete label."""
    actions.apply_settings(ctx, body)
    return current_settings(ctx, request)


@router.get("/cues/{drill}", response_model=CuesOut, responses=problems(401, 404))
def get_cues(ctx: Reader, drill: str) -> CuesOut:
    """A drill's cues as the station shows and says them: the coach's words where set, else the drill's own."""
    return actions.cues_out(ctx, drill)


@router.put("/cues/{drill}", response_model=CuesOut, responses={**WRITE, **problems(400, 404)})
def put_cues(ctx: Writer, drill: str, body: CuesIn) -> CuesOut:
    """Set a drill's cue words (kept in the station's settings); the running station says them from its next fault."""
    return actions.set_cues(ctx, drill, body)
