"""The one polling helper of the test support code."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    check: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.2,
    *,
    fatal: tuple[type[BaseException], ...] = (),
    retry_on: tuple[type[BaseException], ...] = (Exception,),
):
    """Poll ``check`` until it returns something truthy, and return that; raise TimeoutError
    naming ``what`` and the last error. An exception of ``retry_on`` that ``check`` raises
    means "not yet" (a server still coming up), except the ``fatal`` ones, which end the wait
    at once, as every other exception does."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except fatal:
            raise
        except retry_on as e:  # the condition is not met yet; remember why
            last_error = e
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
