"""Structured (JSON lines) logging for every service."""

from __future__ import annotations

import logging
import re
import sys
import time
from urllib.parse import unquote_plus

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# query parameters that carry a credential: uvicorn's access log and its websocket
# lines print the whole path with its query (contract 7: no secret is ever logged)
_PARAM = re.compile(r"([?&;])([^=&\s\"'?]+)=([^&;\s\"']*)")
SECRET_PARAMS = frozenset({"token", "ticket", "sig"})


def _hide(match: re.Match[str]) -> str:
    sep, name, _value = match.groups()
    if unquote_plus(name).strip().lower() in SECRET_PARAMS:
        return f"{sep}{name}=[redacted]"
    return match.group(0)


def redact(text: str) -> str:
    """`text` with the values of `token`, `ticket` and `sig` query parameters hidden
    (however the name is cased or percent-encoded)."""
    return _PARAM.sub(_hide, text)


class RedactSecrets(logging.Filter):
    """Rewrites each record's message with `redact` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str = "INFO") -> None:
    """Send JSON logs to stderr at `level` (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_floorwatch", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    handler._floorwatch = True  # type: ignore[attr-defined]  # marks our own handler
    root.addHandler(handler)
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))
