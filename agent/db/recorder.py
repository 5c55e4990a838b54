"""The receivers' `InstanceRecorder`: the job database's index of spooled instances."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session, sessionmaker

from agent.db.queries import record_instances
from agent.db.session import session_scope
from agent.received import ReceivedInstance


class DatabaseRecorder:
    """Indexes each batch of spooled instances in one transaction (one commit per batch)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record_batch(self, instances: Sequence[ReceivedInstance]) -> None:
        if not instances:
            return
        with session_scope(self._sessions) as session:
            record_instances(session, instances)
