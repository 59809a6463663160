"""Keep ai-edge-quantizer's console noise out of the CLI's output (used by calibration and quantize)."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings


@contextlib.contextmanager
def quiet_stderr():
    """ai-edge-quantizer draws tqdm bars on stderr even when asked not to and logs every tensor
    swap on the root logger; keep the CLI's output to what the user needs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            # The calibrator's interpreter keeps all tensors on purpose; its warning says so.
            warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors.*")
            yield
    finally:
        root.setLevel(level)
