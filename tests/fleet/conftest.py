"""Fixtures for the fleet side's tests: a real mosquitto, a real PostgreSQL, a store on each database.

* ``broker``: a started :class:`~edgeops.agent.localbroker.LocalBroker` (anonymous, persistence on),
  stopped after the test.
* ``pg_server``: one :class:`~edgeops.fleet.localpg.LocalPostgres` cluster for the whole session
  (initdb under /tmp, owned by ``postgres`` when run as root; a free port on 127.0.0.1, its unix socket
  in its directory).
* ``pg_url``: ``postgresql://postgres@127.0.0.1:PORT/edgeops_test``, a database created fresh for
  each test (dropped and created again), so tests never see each other's rows.
* ``store``: an opened :class:`~edgeops.fleet.store.Store`, parametrized ``sqlite`` (a file in
  ``tmp_path``) and ``postgresql`` (on ``pg_url``); closed after the test.

Tests skip, saying what to install, when mosquitto, paho-mqtt, PostgreSQL or psycopg is missing.
"""

from __future__ import annotations

import os

import pytest

from edgeops.agent.localbroker import LocalBroker
from edgeops.fleet.localpg import LocalPostgres


def need_mosquitto() -> None:
    if not LocalBroker.available():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'edgeops[fleet]')")


def need_postgres() -> None:
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install 'edgeops[fleet]')")
    if not LocalPostgres.available():
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql), or no 'postgres' user to run it as")


@pytest.fixture
def broker(tmp_path):
    need_mosquitto()
    b = LocalBroker(workdir=str(tmp_path / "broker")).start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def pg_server():
    need_postgres()
    pg = LocalPostgres().start()
    yield pg
    pg.stop()


@pytest.fixture
def pg_url(request) -> str:
    pg = request.getfixturevalue("pg_server")
    return pg.create_database(os.environ.get("EDGEOPS_TEST_PGDB", "edgeops_test"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The --db of a fresh store: a sqlite file in tmp_path, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "fleet.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url):
    from edgeops.fleet.store import open_store

    s = open_store(store_url)
    yield s
    s.close()
