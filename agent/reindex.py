"""Re-indexing: received files in the spool that the job database does not know get a row.

Receivers acknowledge an instance once its file is durable and index it a moment later
(`agent.indexer`), so a receiver that dies in between leaves acknowledged files without a
row. `reindex_spool` finds every file under `instances/` whose SOP Instance UID no row has
(file names are hashes of that UID; an older file of an instance that moved to another
series keeps no row and stays unindexed) and records it from its own header, with the
file's modification time as `received_at` and an empty calling AE (not kept in the file).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import PurePosixPath

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Instance
from agent.db.queries import record_instances
from agent.db.session import session_scope
from agent.dimse.header import read_header
from agent.dimse.ingest import received_instance
from agent.errors import UnparsableInstanceError
from agent.received import ReceivedInstance
from agent.spool import Spool, uid_hash

LOGGER = logging.getLogger(__name__)

BATCH_SIZE = 500


def reindex_spool(spool: Spool, sessions: sessionmaker[Session]) -> int:
    """Record every spooled instance the database lacks; how many were recorded."""
    with session_scope(sessions) as session:
        known = {uid_hash(uid) for uid in session.scalars(select(Instance.sop_instance_uid))}
    missing = [path for path in spool.instance_paths() if PurePosixPath(path).stem not in known]
    recorded = 0
    for start in range(0, len(missing), BATCH_SIZE):
        batch = [reread(spool, path) for path in missing[start : start + BATCH_SIZE]]
        readable = [instance for instance in batch if instance is not None]
        with session_scope(sessions) as session:
            record_instances(session, readable)
        recorded += len(readable)
    if missing:
        LOGGER.warning("re-indexed %d spooled instances that had no index row", recorded)
    return recorded


def reread(spool: Spool, relative_path: str) -> ReceivedInstance | None:
    """The index record of a spooled file, from its bytes; None (logged) if unreadable."""
    path = spool.path_of(relative_path)
    raw = path.read_bytes()
    try:
        header = read_header(raw)
    except UnparsableInstanceError:  # the reason may quote tag values: not logged
        LOGGER.error("spooled file %s is unreadable; not indexed", relative_path)
        return None
    return received_instance(
        header,
        spool_path=relative_path,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        calling_ae="",
        received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
    )
