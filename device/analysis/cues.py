"""A coach's own cue words, per drill: what the station shows and says for a fault instead of the
drill profile's cue ("chest up" where the profile says "long spine, chest proud").

Kept in the station's own settings (the rep log's `station_settings`, key `cues`), changed on the
trainer page, and read by the fault judge when it raises a fault, so a changed cue is said from the
next fault on without restarting the drill. A cue is short plain text: it is spoken, and a cue that
takes longer to say than a rep takes to go wrong is a lecture.
"""
from __future__ import annotations

import logging
import unicodedata
from typing import Any, Mapping

from device.analysis.vocabulary import Fault, fault_from_name

log = logging.getLogger(__name__)

SETTING = "cues"  # the station_settings key
MAX_CUE_CHARS = 60  # about 3 s of speech at espeak-ng's 175 words a minute (the voice's limit is 4 s)


def clean_cue(text: str) -> str:
    """A cue as kept: whitespace folded, printable text only, at most MAX_CUE_CHARS; "" means "the
    drill's own cue". Raises ValueError saying what is wrong."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") and c not in " \t\n" for c in text):
        raise ValueError("a cue is plain text: no control characters")
    folded = " ".join(text.split())
    if len(folded) > MAX_CUE_CHARS:
        raise ValueError(f"a cue is at most {MAX_CUE_CHARS} characters (about 3 s spoken); this one has {len(folded)}")
    return folded


class CueWords:
    """Every drill's own cues. `for_drill` hands out the drill's live table, which `replace` changes
    in place: an analyzer built with it says the new words from the next fault on."""

    def __init__(self, saved: Any = None):
        self._by_drill: dict[str, dict[Fault, str]] = {}
        self.restore(saved)

    def restore(self, saved: Any) -> None:
        """Take the cues as saved (`to_saved`); a damaged entry is logged and left out, never fatal:
        the drill's own cues are a safe fallback, a station that will not start is not."""
        if saved is None:
            return
        if not isinstance(saved, dict):
            log.warning("saved cue words are not a table (%s): using the drills' own cues", type(saved).__name__)
            return
        for drill, cues in saved.items():
            try:
                self.replace(str(drill), cues)
            except (TypeError, ValueError, AttributeError) as err:
                log.warning("saved cue words for %s are unusable (%s): using the drill's own cues", drill, err)

    def for_drill(self, drill: str) -> Mapping[Fault, str]:
        return self._by_drill.setdefault(drill, {})

    def replace(self, drill: str, cues: Mapping[str, str]) -> None:
        """The drill's cues become `cues` (fault name -> words; "" for the drill's own cue)."""
        table: dict[Fault, str] = {}
        for name, text in cues.items():
            fault = fault_from_name(name)
            if fault is None:
                raise ValueError(f"{name!r} is not a fault")
            if not isinstance(text, str):
                raise TypeError(f"the cue for {name} is not text")
            if words := clean_cue(text):
                table[fault] = words
        current = self._by_drill.setdefault(drill, {})
        current.clear()
        current.update(table)

    def to_saved(self) -> dict[str, dict[str, str]]:
        return {drill: {f.value: words for f, words in cues.items()} for drill, cues in self._by_drill.items() if cues}
