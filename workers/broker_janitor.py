"""Sweeping the embedded broker: Kombu's SQLAlchemy transport never deletes a message.

It marks a delivered message invisible (and stamps its `timestamp` with the delivery time,
naive local time) and never reads it again: an unacknowledged message goes back to the queue
as a new row, or is lost with its worker, which `agent.reconciler` makes good. So invisible
rows are dead weight, and without a sweep `broker.db` grows with every job and export.
`BrokerJanitor.sweep` deletes those delivered more than `retention` ago; `serve` calls it
from the reconciler loop. Other brokers (Redis) clean up after themselves: nothing to do.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, create_engine, inspect, text

log = logging.getLogger(__name__)

SQLALCHEMY_SCHEMES = ("sqla+", "sqlalchemy+")
MESSAGE_TABLE = "kombu_message"
"""Kombu's default name (`table_name_prefix` "kombu_"), which the agent does not change."""
DEFAULT_RETENTION = timedelta(hours=1)
_DELETE_DELIVERED = text(
    f"DELETE FROM {MESSAGE_TABLE} WHERE visible = :visible AND timestamp < :cutoff"
)


class BrokerJanitor:
    """Deletes delivered messages from an embedded SQLAlchemy broker; idle for any other."""

    def __init__(self, broker_url: str, retention: timedelta = DEFAULT_RETENTION) -> None:
        self._retention = retention
        self._engine: Engine | None = None
        if broker_url.startswith(SQLALCHEMY_SCHEMES):
            self._engine = create_engine(broker_url.split("+", 1)[1])

    def sweep(self) -> int:
        """Delete delivered messages older than the retention; how many went."""
        if self._engine is None:
            return 0
        cutoff = datetime.now() - self._retention
        with self._engine.begin() as connection:
            if not inspect(connection).has_table(MESSAGE_TABLE):
                return 0  # no message sent yet: Kombu creates its tables on first use
            deleted = connection.execute(_DELETE_DELIVERED, {"visible": False, "cutoff": cutoff})
        if deleted.rowcount:
            log.info("broker: deleted %d delivered message(s)", deleted.rowcount)
        return int(deleted.rowcount)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
