"""The embedded broker's sweep, on a real Kombu SQLAlchemy transport in a temporary SQLite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kombu import Connection
from sqlalchemy import create_engine, text

from workers.broker_janitor import MESSAGE_TABLE, BrokerJanitor


def message_rows(database: Path) -> list[tuple[bool, str]]:
    """(visible, payload) of every row of Kombu's message table."""
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(text(f"SELECT visible, payload FROM {MESSAGE_TABLE}"))
        found = [(bool(visible), payload) for visible, payload in rows]
    engine.dispose()
    return found


def test_delivered_messages_go_and_pending_ones_stay(tmp_path: Path) -> None:
    database = tmp_path / "broker.db"
    url = f"sqla+sqlite:///{database}"
    with Connection(url) as connection:
        queue = connection.SimpleQueue("inference")
        queue.put({"job": 1})
        queue.get(timeout=5).ack()
        queue.put({"job": 2})
        queue.close()
    assert [visible for visible, _ in message_rows(database)] == [False, True]
    janitor = BrokerJanitor(url, retention=timedelta(0))

    deleted = janitor.sweep()
    janitor.close()

    assert deleted == 1
    assert [visible for visible, _ in message_rows(database)] == [True]
    with Connection(url) as connection:
        queue = connection.SimpleQueue("inference")
        assert queue.get(timeout=5).payload == {"job": 2}
        queue.close()


def test_recent_deliveries_are_kept_for_the_retention(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    with Connection(url) as connection:
        queue = connection.SimpleQueue("export")
        queue.put({"export": 1})
        queue.get(timeout=5).ack()
        queue.close()
    janitor = BrokerJanitor(url, retention=timedelta(hours=1))

    assert janitor.sweep() == 0
    janitor.close()


def test_before_any_message_and_for_redis_there_is_nothing_to_do(tmp_path: Path) -> None:
    fresh = BrokerJanitor(f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    redis = BrokerJanitor("redis://127.0.0.1:6379/0")

    assert (fresh.sweep(), redis.sweep()) == (0, 0)
    fresh.close()
