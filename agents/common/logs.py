"""JSON-lines logging: one object per line on stderr with ``ts``, ``level``, ``logger``,
``msg`` and the keyword fields given to the call. Values of fields whose names look secret
(password, token, secret, jaas, private key) are replaced by ``"***"``.

Usage::

    setup_logging("kairn-topic-agent", "INFO")
    log = get_logger("kairn-topic-agent")
    log.info("topic created", topic="orders", partitions=3)
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import ClassVar

SECRET_WORDS = ("password", "secret", "token", "jaas", "private", "credential")


def redact(fields: dict) -> dict:
    """A copy of ``fields`` with the values of secret-looking keys replaced."""
    out = {}
    for k, v in fields.items():
        lk = str(k).lower()
        if any(w in lk for w in SECRET_WORDS) or (lk.endswith((".key", "_key")) and lk != "key"):
            out[k] = "***"
        elif isinstance(v, dict):
            out[k] = redact(v)
        else:
            out[k] = v
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rec = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            rec.update(redact(fields))
        if record.exc_info:
            rec["exception"] = self.formatException(record.exc_info)
        return json.dumps(rec, default=str)


class Logger:
    """A thin wrapper: ``log.info(msg, **fields)``."""

    def __init__(self, logger: logging.Logger):
        self._l = logger

    def _log(self, level: int, msg: str, exc_info=None, **fields) -> None:
        if self._l.isEnabledFor(level):
            self._l.log(level, msg, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, msg: str, **f) -> None:
        self._log(logging.DEBUG, msg, **f)

    def info(self, msg: str, **f) -> None:
        self._log(logging.INFO, msg, **f)

    def warning(self, msg: str, **f) -> None:
        self._log(logging.WARNING, msg, **f)

    def error(self, msg: str, **f) -> None:
        self._log(logging.ERROR, msg, **f)

    def exception(self, msg: str, **f) -> None:
        self._log(logging.ERROR, msg, exc_info=True, **f)

    def enabled(self, level: int) -> bool:
        return self._l.isEnabledFor(level)


def setup_logging(name: str, level: str = "INFO", stream=None) -> Logger:
    """Routes every logger (also kafka-python's and the kubernetes client's, at WARNING and
    above) to one JSON-lines handler; returns the agent's logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for noisy in ("kafka", "kubernetes", "urllib3", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kafka.admin").setLevel(logging.ERROR)
    logging.getLogger("kairn").setLevel(getattr(logging, level.upper(), logging.INFO))
    return get_logger(name)


def get_logger(name: str) -> Logger:
    """A logger named ``name`` (kept under the ``kairn`` hierarchy for its level)."""
    full = name if name.startswith("kairn") else f"kairn.{name}"
    return Logger(logging.getLogger(full.replace("kairn-", "kairn.", 1)))


class LineLogger:
    """The hook commands' logger: ``log(msg, level=..., **fields)`` writes one JSON object a line
    to stderr, below ``threshold`` nothing. (The agents use ``setup_logging``; the hooks are
    short-lived commands whose callers read their stderr line by line.)"""

    LEVELS: ClassVar[dict[str, int]] = {"debug": 10, "info": 20, "warning": 30, "error": 40}

    def __init__(self, name: str, level: str = "info"):
        self.name = name
        self.set_level(level)

    def set_level(self, level: str) -> None:
        self.threshold = self.LEVELS[level]

    def __call__(self, msg: str, level: str = "info", **fields) -> None:
        if self.LEVELS.get(level, 20) < self.threshold:
            return
        rec = {"ts": datetime.now(UTC).isoformat(timespec="seconds"), "level": level, "msg": msg}
        print(
            json.dumps({**rec, "logger": self.name, **fields}, default=str),
            file=sys.stderr,
            flush=True,
        )
