"""The server's log lines: uvicorn's text format, or one JSON object a line for log collectors.

CVSPEC_LOG_LEVEL sets the level and CVSPEC_LOG_FORMAT the format (`text`, `json`) of every
line a server process writes, cvspec's own and uvicorn's, in the parent and in each worker.
JSON lines are what Loki, Elasticsearch, Cloud Logging and `kubectl logs | jq` read without a
parsing rule: a traceback stays inside its line (`exc_info`) instead of spreading over many.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
from typing import Any

from cvspec.errors import CvspecError

LEVEL_ENV = "CVSPEC_LOG_LEVEL"
LEVELS = ("debug", "info", "warning", "error", "critical")  # uvicorn's, less "trace"
FORMAT_ENV = "CVSPEC_LOG_FORMAT"
FORMATS = ("text", "json")
TEXT_FORMAT = "%(levelname)s:     %(message)s"  # uvicorn's own


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time (UTC, ISO 8601 with milliseconds), level, logger, message,
    pid, and exc_info (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def level() -> str:
    """CVSPEC_LOG_LEVEL in lower case (default info); a value uvicorn does not know is an error."""
    value = os.environ.get(LEVEL_ENV, "info")
    if value.lower() not in LEVELS:
        raise CvspecError(f"{LEVEL_ENV}={value!r}: one of {', '.join(LEVELS)}")
    return value.lower()


def log_format() -> str:
    """CVSPEC_LOG_FORMAT (default text)."""
    value = os.environ.get(FORMAT_ENV, "text")
    if value.lower() not in FORMATS:
        raise CvspecError(f"{FORMAT_ENV}={value!r}: one of {', '.join(FORMATS)}")
    return value.lower()


def configure() -> None:
    """cvspec.serve's log lines at CVSPEC_LOG_LEVEL in CVSPEC_LOG_FORMAT, in every process."""
    name, fmt = level(), log_format()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=name.upper(), handlers=[handler])  # once a process


def uvicorn_config() -> dict[str, Any] | None:
    """uvicorn's `log_config`: its default for text (None), its loggers with JSON lines else."""
    if log_format() != "json":
        return None
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in config["formatters"].values():
        formatter.clear()
        formatter["()"] = f"{__name__}.JsonFormatter"
    return config
