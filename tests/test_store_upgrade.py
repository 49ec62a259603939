"""A data directory made by an older version still opens: missing columns are added."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from gateway.store import Database


def test_a_data_directory_from_an_older_version_gains_the_new_columns(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    db = Database(url)
    db.create_all()
    with db.begin() as connection:
        connection.execute(text("DROP INDEX ix_recording_files_conference_id"))
        connection.execute(text("ALTER TABLE recording_files DROP COLUMN conference_name"))
        connection.execute(text("ALTER TABLE recording_files DROP COLUMN conference_id"))
        connection.execute(
            text("INSERT INTO calls_configurations (id, name) VALUES ('kept', 'kept')")
        )
    db.close()
    again = Database(url)
    again.create_all()
    columns = {c["name"] for c in inspect(again.engine).get_columns("recording_files")}
    assert {"conference_id", "conference_name"} <= columns
    indexes = {i["name"] for i in inspect(again.engine).get_indexes("recording_files")}
    assert "ix_recording_files_conference_id" in indexes
    with again.begin() as connection:
        assert connection.execute(text("SELECT id FROM calls_configurations")).scalars().all() == [
            "kept"
        ]
    again.close()
