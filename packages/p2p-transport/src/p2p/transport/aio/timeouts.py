"""A deadline around one awaitable, the same on Python 3.10 and later."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import Any

__all__ = ["with_timeout"]

if sys.version_info >= (3, 11):

    async def with_timeout(awaitable: Awaitable[Any], timeout: float) -> Any:
        """``await awaitable`` with a deadline (raises :class:`TimeoutError`)."""
        async with asyncio.timeout(timeout):
            return await awaitable

else:  # pragma: no cover - 3.10

    async def with_timeout(awaitable: Awaitable[Any], timeout: float) -> Any:
        """``await awaitable`` with a deadline (raises :class:`TimeoutError`)."""
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError as exc:
            raise TimeoutError from exc
