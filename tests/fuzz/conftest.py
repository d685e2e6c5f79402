"""Fuzz suite settings: quiet logs (targets log every rejected input) and the budgets.

``P2P_FUZZ_EXAMPLES`` (default 200): Hypothesis examples per target.
``P2P_FUZZ_SECONDS`` (default 1): seconds of the mutation engine per target; the long
run uses 600 (``tox -e fuzz``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

FUZZ_EXAMPLES = int(os.environ.get("P2P_FUZZ_EXAMPLES", "200"))
FUZZ_SECONDS = float(os.environ.get("P2P_FUZZ_SECONDS", "1"))


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
