"""Exports: reps as CSV or JSON, and sessions as labels in the format `station evaluate` reads
(the labels.csv of ../shared/README.md: one row per session, corrections applied)."""
from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from datetime import datetime
import time
from typing import Any, Iterable, Iterator, Optional

from device.analysis.ladder import corrected_faults, is_counted
from web.views import clip_name, stored_verdict

REP_COLUMNS = (
    "session_id", "rep_id", "rep_index", "started_at", "started_at_local", "duration_s", "lowering_s", "rising_s",
    "peak_hip_flexion_deg", "knee_flexion_at_bottom_deg", "trunk_angle_at_bottom_deg", "hip_shift_at_bottom",
    "hinge_ratio", "lockout_reached", "side", "movement", "verdict", "faults", "counted", "corrected_faults", "corrections",
    "profile", "athlete", "source", "station",  # station: the hub's export names where each rep was done
)
# The columns of ../shared/clips/labels.csv, so an export reads straight back into `station evaluate`.
LABEL_COLUMNS = ("clip", "movement", "view", "reps", "faults", "source_labels", "notes", "drill")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def local_iso(ts: Optional[float]) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds") if ts is not None else ""


def _number(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else ""
    return value


def _text(value: Optional[str]) -> str:
    """Text a spreadsheet must not run as a formula: a leading =, +, -, @, tab or CR is escaped with '."""
    value = value or ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any) -> Any:
    """Every text cell of every export goes through here (numbers stay numbers): a name or note
    from a station, an athlete's name, a fault, anything a LAN client could have typed."""
    return _text(value) if isinstance(value, str) else value


def rep_row(rep: dict[str, Any], session: dict[str, Any]) -> dict[str, Any]:
    corrections = [c["kind"] + (f":{c['fault']}" if c["fault"] else "") for c in rep["corrections"]]
    return {
        "session_id": rep["session_id"], "rep_id": rep["id"], "rep_index": rep["rep_index"],
        "started_at": _number(rep["started_at"]), "started_at_local": local_iso(rep["started_at"]),
        "duration_s": _number(rep["ended_at"] - rep["started_at"]), "lowering_s": _number(rep["lowering_s"]),
        "rising_s": _number(rep["rising_s"]), "peak_hip_flexion_deg": _number(rep["peak_hip_flexion_deg"]),
        "knee_flexion_at_bottom_deg": _number(rep["knee_flexion_at_bottom_deg"]),
        "trunk_angle_at_bottom_deg": _number(rep["trunk_angle_at_bottom_deg"]),
        "hip_shift_at_bottom": _number(rep["hip_shift_at_bottom"]), "hinge_ratio": _number(rep["hinge_ratio"]),
        "lockout_reached": int(rep["lockout_reached"]), "side": rep["side"], "movement": rep["movement"],
        "verdict": stored_verdict(rep), "faults": ";".join(f["name"] for f in rep["faults"]), "counted": int(is_counted(rep)),
        "corrected_faults": ";".join(corrected_faults(rep)), "corrections": ";".join(corrections),
        "profile": session["profile"], "athlete": session["athlete"] or "", "source": session["source"],
        "station": session.get("station") or "",
    }


def _csv(columns: Iterable[str], rows: Iterable[dict[str, Any]], header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue()


def reps_csv(reps: list[dict[str, Any]], sessions: dict[int, dict[str, Any]]) -> str:
    return _csv(REP_COLUMNS, (rep_row(r, sessions[r["session_id"]]) for r in reps))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def reps_json(payload: Any) -> str:
    """JSON with non-finite numbers as null (JSON has no NaN)."""
    return json.dumps(_clean(payload), separators=(",", ":"))


EXPORT_PAGE = 200  # reps read, formatted and sent at a time
EXPORT_SHARE = 0.5  # while exporting, the worker rests as long as it worked (at most half a core)


def stream_reps(store: Any, since: float, until: float, fmt: str, rep_json: Any,
                pause: Any = time.sleep) -> Iterator[str]:
    """The rep export, a page of reps at a time, resting between pages: the same bytes as one
    big answer, without a 15 MB body in memory or a core taken for seconds. `rep_json(rep)` is a
    rep as the API shows it (JSON only); `pause(seconds)` rests (a test may count instead)."""
    after: tuple[float, int] = (-math.inf, -1)
    sessions: dict[int, dict[str, Any]] = {}
    first = True
    if fmt == "csv":
        yield _csv(REP_COLUMNS, ())
    else:
        yield f'{{"since":{json.dumps(since)},"until":{json.dumps(until)},"reps":['
    while True:
        began = time.monotonic()
        page = store.reps_page(since, until, after, EXPORT_PAGE)
        if not page:
            break
        for sid in {r["session_id"] for r in page} - sessions.keys():
            sessions[sid] = store.get_session(sid)
        if fmt == "csv":
            yield _csv(REP_COLUMNS, (rep_row(r, sessions[r["session_id"]]) for r in page), header=False)
        else:
            parts = [reps_json(rep_json(r)) for r in page]
            yield ("" if first else ",") + ",".join(parts)
        first = False
        after = (page[-1]["started_at"], page[-1]["id"])
        pause((time.monotonic() - began) * (1 / EXPORT_SHARE - 1))
    if fmt != "csv":
        yield f'],"sessions":{reps_json(list(sessions.values()))}}}'



def session_label(session: dict[str, Any], reps: list[dict[str, Any]]) -> dict[str, Any]:
    """One labels.csv row for a session: what the trainer says happened, corrections applied."""
    counted = [r for r in reps if is_counted(r)]
    faults = sorted({name for r in counted for name in corrected_faults(r)})
    movements = Counter(r["movement"] for r in counted)
    movement = movements.most_common(1)[0][0] if movements else "hinge"
    corrections = [c for r in reps for c in r["corrections"]]
    source_labels = f"hinge station session {session['id']}, drill {session['profile']}"
    if corrections:
        source_labels += f", {len(corrections)} trainer correction{'s' if len(corrections) != 1 else ''}"
    notes = [f"athlete {session['athlete']}"] if session["athlete"] else []
    if clip_name(session["source"]) is None:
        notes.append(f"live {session['source'] or 'camera'} session started {local_iso(session['started_at'])}, no clip stored")
    notes += [c["note"] for c in corrections if c["note"]]
    return {
        "clip": clip_name(session["source"]) or f"session-{session['id']}",
        "movement": movement, "view": "side", "reps": len(counted), "faults": ";".join(faults),
        "source_labels": source_labels, "notes": "; ".join(notes),
        "drill": session["profile"],  # the drill the session was judged under
    }


def labels_csv(rows: Iterable[dict[str, Any]]) -> str:
    return _csv(LABEL_COLUMNS, rows)
