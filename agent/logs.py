"""Logging set-up, called by entry points only (`serve`, `worker`): plain text or JSON lines.

Modules log with `logging.getLogger(__name__)` and put identities (job, task) in `extra`;
JSON output carries those extras as fields. Nothing here adds patient data: whether tags
such as names are logged at all is each module's choice under `settings.log_phi`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from agent.config import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_LIBRARIES = ("pynetdicom", "highdicom")
"""Libraries logging every association or copied module at INFO: warnings and errors only."""
_STANDARD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the `extra` fields, and the
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (key, value) for key, value in vars(record).items() if key not in _STANDARD_FIELDS
        )
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings, level: int | str = logging.INFO) -> None:
    """Send every log record to stderr, as JSON lines when `settings.log_json` is on."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_json else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
