"""The polling helper (devtools/waiting.py)."""

from __future__ import annotations

import pytest

from devtools.waiting import wait_until


def test_wait_until_names_what_it_waited_for_and_the_last_error():
    def never():
        raise ConnectionRefusedError("nope")

    with pytest.raises(TimeoutError, match=r"waiting for the moon.*nope"):
        wait_until(never, 0.3, "the moon", interval=0.05)


def test_wait_until_returns_the_first_truthy_result():
    calls = iter([0, None, "ready"])
    assert wait_until(lambda: next(calls), 5, "x", interval=0.01) == "ready"


def test_fatal_errors_end_the_wait_at_once():
    calls = []

    def check():
        calls.append(1)
        raise KeyError("gone for good")

    with pytest.raises(KeyError):
        wait_until(check, 30, "x", interval=0.01, fatal=(KeyError,))
    assert len(calls) == 1


def test_only_the_errors_it_is_told_to_retry_mean_not_yet():
    calls = []

    def check():
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("still starting")
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        wait_until(check, 5, "something", 0.01, retry_on=(ConnectionError,))
    assert len(calls) == 2
