"""Corrections: a trainer's word on a rep, kept beside the station's verdict."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from web import actions
from web.context import CorrectionId, RepId, Writer
from web.schemas import CorrectionIn, CorrectionOut
from web.routers.common import WRITE, problems

router = APIRouter(prefix="/api", tags=["corrections"])


@router.post("/reps/{rep_id}/corrections", status_code=201, response_model=CorrectionOut,
             responses={**WRITE, **problems(400, 404)})
def add_correction(ctx: Writer, rep_id: RepId, body: CorrectionIn) -> CorrectionOut:
    """Mark a rep as not a rep, a raised fault as a false alarm, or add a fault the station missed."""
    return actions.add_correction(ctx, rep_id, body)


@router.delete("/corrections/{correction_id}", status_code=204, response_class=Response,
               responses={**WRITE, **problems(404)})
def delete_correction(ctx: Writer, correction_id: CorrectionId) -> Response:
    """Withdraw a correction; the station's verdict was never changed, so nothing else moves."""
    actions.delete_correction(ctx, correction_id)
    return Response(status_code=204)
