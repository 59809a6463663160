"""The rendered-athlete bench's body model for the tests: loaded once per session. Without the [synth]
extra (anny, torch) a developer's run skips with the reason; under CI=true it fails, since CI installs
the extra (scripts/setup.sh) and a bench test must not pass by not running."""
from __future__ import annotations

import os
from functools import lru_cache

import pytest


@lru_cache(maxsize=1)
def _load():
    from models.synth.body import BodyModel

    return BodyModel()


def body_model_or_skip():
    try:
        import anny  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        reason = f"the rendered-athlete bench needs the [synth] extra (anny, torch): {err}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return _load()
