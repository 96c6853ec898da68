"""The user-purge benchmark: the release binary against the Python task it
replaces, on the real Pub/Sub emulator and the real MariaDB (and, with
``--only postgres``, the real PostgreSQL).

Run it through ``bench/run``, which brings up the services, the venv and the
release build and then calls this with PUBSUB_EMULATOR_HOST set. It writes
``bench/results.md`` (and prints it). Figures only: nothing here fails a test.

Every timed run gets a fresh backlog: the subscription is recreated, N
USER_REMOVED events for distinct random existing users are published, the
program runs as a whole process under ``/usr/bin/time -v`` (wall time measured
here around the process, peak RSS from time), the run is checked (every user
gone, every message acknowledged), and the deleted users and their orders are
put back, so every run starts from 1,000,000 users.
"""

import argparse
import base64
import datetime
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pymysql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

USERS = 1_000_000
ORDERS_PER_USER = 2
DATABASE = "user_purge_bench"  # not up_*: scripts/test drops those
PROJECT = "bench-project"
TOPIC = "bench-user-events"
SUBSCRIPTION = "bench-user-purge"
ACK_DEADLINE = 60  # seconds: the Python reference never extends a lease
PUBLISH_BATCH = 1_000
USER_REMOVED = 4
PYTHON_PULL_TIMEOUT = 0.5  # seconds, in the Python runs with messages: see README
# The MariaDB that bench/run's ensure_mariadb brings up; another port for experiments.
DB_PORT = int(os.environ.get("BENCH_DB_PORT", "3306"))
# The drain empties its table of users, so it runs on a database of its own,
# seeded afresh before and dropped after: the other cases' database is never
# left half-empty, even when a drain is interrupted.
DRAIN_DATABASE = "user_purge_bench_drain"
# The job's own upper bounds on a run (--max-messages and --max-duration).
DRAIN_MAX_DURATION = 3600
# The map case (issue 11): a database of its own with three tables, seeded
# before the case and dropped after it (unless --keep-map-database), and the
# erasure map both programs run on it.
MAP_DATABASE = "user_purge_bench_map"
MAP_FILE = HERE / "erasure-map.toml"
SESSIONS_PER_USER = 3
ERASED_NAME = "erased user"  # the map's replace = { name = ... }
# Rows each statement of the map touches per removed user.
MAP_ROWS = {"sessions": SESSIONS_PER_USER, "invoices": 1, "users": 1}
# The via case (issue 17): a database of its own whose entries reach their
# rows through other tables (bench/erasure-map-via.toml), seeded before the
# case and dropped after it (unless --keep-via-database). User u has orders
# 2u-1 and 2u, order items 5u-4 .. 5u (three on the first order, two on the
# second), one shipping row per order (id = order id), and, when u is odd, a
# newsletter row under its email.
VIA_DATABASE = "user_purge_bench_via"
VIA_MAP_FILE = HERE / "erasure-map-via.toml"
VIA_ORDERS_PER_USER = 2
VIA_ITEMS_PER_USER = 5
# The server's own bound on the single-table subquery form, which scans.
VIA_SUBQUERY_LIMIT = 600  # seconds
# The heavy case (issue 18): one user with 2,000,000 rows in an `events` table
# (user_id indexed, no foreign key), erased three ways, each on a freshly
# seeded database of its own (dropped after, unless --keep-heavy-database):
# user-purge with the entry chunked, user-purge with it atomic, and
# pt-archiver; and, as the floor, the one DELETE by hand. The heavy user's
# rows are ids 1 .. 2,000,000; users 2 .. 100,000 have one row each after
# them, which must be left alone.
HEAVY_DATABASE = "user_purge_bench_heavy"
HEAVY_MAP_CHUNKED = HERE / "erasure-map-heavy-chunked.toml"
HEAVY_MAP_ATOMIC = HERE / "erasure-map-heavy.toml"
HEAVY_USER = 1
HEAVY_ROWS = 2_000_000
HEAVY_USERS = 100_000
# --chunk-rows' largest value, for the atomic run.
HEAVY_ATOMIC_CHUNK_ROWS = 1_000_000
# pt-archiver's chunk, as user-purge's default --chunk-rows.
HEAVY_PT_LIMIT = 10_000
# The side connection's poll of information_schema.innodb_trx, seconds:
# InnoDB fills that table from a buffer that it refreshes only when more than
# 0.1 s has passed since it was last read (the manual's "Persistence and
# Consistency of InnoDB Transaction and Locking Information"), so a poll every
# 50 ms reads the first snapshot over and over (seen: one value for a whole
# run); every 120 ms, each poll sees the transactions as they are.
HEAVY_POLL = 0.12
HEAVY_WAYS = ("chunked", "atomic", "floor", "pt-archiver")
# The verify case (issue 19): `user-purge verify` over a 1,000,000-user
# erasure record and the via case's five-entry map, on a database of its own
# (dropped after, unless --keep-verify-database). User ids run from 1 to
# 1,500,000 with the via case's shapes (user u: orders 2u-1 and 2u, order
# items 5u-4 .. 5u, a shipping row per order, a newsletter row when u is
# odd); the ids divisible by 3 are live users with all their rows, every
# other id is in the record and erased: no rows, but for three small known
# sets drawn from them (see VerifyDatabase).
VERIFY_DATABASE = "user_purge_bench_verify"
VERIFY_MAP_FILE = VIA_MAP_FILE
VERIFY_RECORD = "erasure_record"
VERIFY_IDS = 1_500_000
VERIFY_LIVE_EVERY = 3
# Erased users whose rows came back: all of them (a restore); only their
# orders, with the shipping rows redacted (a stale writer); only an odd
# user's newsletter row, which no entry can reach once the users row is gone.
VERIFY_REAPPEARED = 20
VERIFY_ORDERS_BACK = 10
VERIFY_NEWSLETTER_ONLY = 5
# verify's page of the record (src/ops/verify.rs, PAGE).
VERIFY_PAGE = 10_000
# The PostgreSQL case (issue 20): the compare case on PostgreSQL 15, the
# server scripts/test uses (127.0.0.1:5432, user postgres, trust auth; the
# MySQL cases run as root, so this one runs as the superuser too), in a
# database of its own with the same users and orders (ON DELETE CASCADE,
# orders.user_id indexed as InnoDB indexes a foreign key), seeded before the
# case and dropped after it (unless --keep-postgres-database).
POSTGRES_PORT = int(os.environ.get("BENCH_POSTGRES_PORT", "5432"))
POSTGRES_DATABASE = "user_purge_bench_postgres"
# The cases run when --only is not given.
DEFAULT_CASES = {"compare", "empty", "growth", "phases"}


# --- the services ----------------------------------------------------------


class Emulator:
    """The emulator's REST API: topics, subscriptions, publishing."""

    def __init__(self, host):
        self.base = f"http://{host}/v1/projects/{PROJECT}"

    def call(self, method, path, body=None, accept=()):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            if e.code in accept:
                return None
            raise RuntimeError(f"{method} {path}: HTTP {e.code}: {e.read()[:300]!r}") from e

    def fresh_subscription(self):
        self.call("PUT", f"/topics/{TOPIC}", {}, accept=(409,))
        self.call("DELETE", f"/subscriptions/{SUBSCRIPTION}", accept=(404,))
        self.call(
            "PUT",
            f"/subscriptions/{SUBSCRIPTION}",
            {"topic": f"projects/{PROJECT}/topics/{TOPIC}", "ackDeadlineSeconds": ACK_DEADLINE},
        )

    def publish_removals(self, user_ids):
        """USER_REMOVED events, 1,000 per request, from 2 threads."""
        batches = [user_ids[i : i + PUBLISH_BATCH] for i in range(0, len(user_ids), PUBLISH_BATCH)]
        errors = []

        def work(mine):
            try:
                for batch in mine:
                    body = {"messages": [{"data": removal(u)} for u in batch]}
                    answer = self.call("POST", f"/topics/{TOPIC}:publish", body)
                    if len(answer["messageIds"]) != len(batch):
                        raise RuntimeError("the emulator published fewer messages than sent")
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work, args=(batches[k::2],)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def removal(user_id):
    """UserEventData{event_type: USER_REMOVED, user_id}, base64 for REST."""
    data = b"\x08" + varint(USER_REMOVED) + b"\x10" + varint(user_id)
    return base64.b64encode(data).decode()


class Database:
    def __init__(self):
        self.server = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", autocommit=True)

    def sql(self, statement, args=None):
        with self.server.cursor() as cursor:
            cursor.execute(statement, args)
            return cursor.fetchall()

    def ensure_seeded(self, database=DATABASE, fresh=False):
        """1,000,000 users with 2 orders each, made once and kept (or made
        anew with ``fresh``). Selects the database on this connection."""
        self.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        self.server.select_db(database)
        tables = {row[0] for row in self.sql("SHOW TABLES")}
        if {"users", "orders"} <= tables and not fresh:
            users = self.sql("SELECT COUNT(*) FROM users")[0][0]
            orders = self.sql("SELECT COUNT(*) FROM orders")[0][0]
            if users == USERS and orders == USERS * ORDERS_PER_USER:
                log(f"database {database}: {users:,} users, {orders:,} orders (kept)")
                return
        log(f"database {database}: creating {USERS:,} users and {USERS * ORDERS_PER_USER:,} orders")
        started = time.perf_counter()
        self.sql("DROP TABLE IF EXISTS orders")
        self.sql("DROP TABLE IF EXISTS users")
        self.sql(
            """CREATE TABLE users (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 email VARCHAR(100) NOT NULL,
                 created_at DATETIME NOT NULL
               ) ENGINE=InnoDB"""
        )
        self.sql(
            """CREATE TABLE orders (
                 id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                 user_id BIGINT UNSIGNED NOT NULL,
                 item VARCHAR(100) NOT NULL,
                 FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE
               ) ENGINE=InnoDB"""
        )
        # MariaDB's SEQUENCE engine makes the rows without a round trip each.
        self.sql(
            f"""INSERT INTO users (id, email, created_at)
                SELECT seq, CONCAT('user', seq, '@example.com'), '2024-01-01'
                FROM seq_1_to_{USERS}"""
        )
        for k in range(ORDERS_PER_USER):
            self.sql(
                f"""INSERT INTO orders (user_id, item)
                    SELECT seq, 'item {k}' FROM seq_1_to_{USERS}"""
            )
        self.sql("ANALYZE TABLE users, orders")
        log(f"  seeded in {time.perf_counter() - started:.1f} s")

    def check(self, user_ids):
        """What a run left undone for these users: a list of problems."""
        users, orders = self.remaining(user_ids)
        return [f"{users} users and {orders} orders left"] if users or orders else []

    def remaining(self, user_ids):
        users = orders = 0
        for i in range(0, len(user_ids), 10_000):
            chunk = user_ids[i : i + 10_000]
            users += self.sql("SELECT COUNT(*) FROM users WHERE id IN %s", (chunk,))[0][0]
            orders += self.sql("SELECT COUNT(*) FROM orders WHERE user_id IN %s", (chunk,))[0][0]
        return users, orders

    def restore(self, user_ids):
        """Puts the deleted users and their orders back (untimed)."""
        for i in range(0, len(user_ids), 10_000):
            chunk = user_ids[i : i + 10_000]
            self.sql(
                "INSERT IGNORE INTO users (id, email, created_at) VALUES "
                + ",".join(f"({u},'user{u}@example.com','2024-01-01')" for u in chunk)
            )
            present = {r[0] for r in self.sql("SELECT DISTINCT user_id FROM orders WHERE user_id IN %s", (chunk,))}
            missing = [u for u in chunk if u not in present]
            if missing:
                self.sql(
                    "INSERT INTO orders (user_id, item) VALUES "
                    + ",".join(f"({u},'item {k}')" for u in missing for k in range(ORDERS_PER_USER))
                )

    def settle(self, limit=60):
        """Waits for InnoDB's purge of the last run's deleted rows, so that it
        does not run in the background of the next timed run."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if int(self.sql("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")[0][1]) == 0:
                return
            time.sleep(0.1)

    def version(self):
        return self.sql("SELECT VERSION()")[0][0]


class PostgresDatabase:
    """The PostgreSQL case's database, with what ``Bench.run`` asks of a
    database (check, restore, settle): the users and orders of ``Database``
    made with generate_series, on psycopg connections in autocommit."""

    def __init__(self):
        import psycopg  # only for this case: the MySQL ones never need it

        self.psycopg = psycopg
        self.admin = psycopg.connect(self.url("postgres"), autocommit=True)
        self.conn = None
        self.seeded_in = None

    @staticmethod
    def url(database=POSTGRES_DATABASE):
        return f"postgres://postgres@127.0.0.1:{POSTGRES_PORT}/{database}"

    def sql(self, statement, args=None):
        with self.conn.cursor() as cursor:
            cursor.execute(statement, args)
            return cursor.fetchall() if cursor.description else cursor.rowcount

    def ensure_seeded(self, fresh=False):
        """1,000,000 users with 2 orders each, in a database made once and
        kept (or made anew with ``fresh``)."""
        exists = self.admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DATABASE,)).fetchone()
        if exists and not fresh:
            self.conn = self.psycopg.connect(self.url(), autocommit=True)
            tables = {r[0] for r in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            if {"users", "orders"} <= tables:
                users, orders = self.totals()
                if users == USERS and orders == USERS * ORDERS_PER_USER:
                    log(f"database {POSTGRES_DATABASE}: {users:,} users, {orders:,} orders (kept)")
                    return
            self.conn.close()
        self.drop()
        self.admin.execute(f"CREATE DATABASE {POSTGRES_DATABASE}")
        self.conn = self.psycopg.connect(self.url(), autocommit=True)
        log(f"database {POSTGRES_DATABASE} (PostgreSQL): creating {USERS:,} users and {USERS * ORDERS_PER_USER:,} orders")
        started = time.perf_counter()
        self.sql(
            """CREATE TABLE users (
                 id bigint PRIMARY KEY,
                 email varchar(100) NOT NULL,
                 created_at timestamp NOT NULL
               )"""
        )
        self.sql(
            """CREATE TABLE orders (
                 id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                 user_id bigint NOT NULL,
                 item varchar(100) NOT NULL
               )"""
        )
        self.sql(
            f"""INSERT INTO users (id, email, created_at)
                SELECT g, 'user' || g || '@example.com', '2024-01-01' FROM generate_series(1, {USERS}) AS g"""
        )
        # One pass per k, as the MariaDB seeding: a user's orders lie apart.
        for k in range(ORDERS_PER_USER):
            self.sql(f"INSERT INTO orders (user_id, item) SELECT g, 'item {k}' FROM generate_series(1, {USERS}) AS g")
        # The key and the index after the rows: one validation, one sort.
        self.sql("ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE")
        self.sql("CREATE INDEX orders_user_id ON orders (user_id)")
        # VACUUM too, so that no timed run sets the new rows' hint bits.
        self.sql("VACUUM (ANALYZE) users, orders")
        self.seeded_in = time.perf_counter() - started
        log(f"  seeded in {self.seeded_in:.1f} s")

    def totals(self):
        return self.sql("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders)")[0]

    def remaining(self, user_ids):
        return self.sql(
            "SELECT (SELECT count(*) FROM users WHERE id = ANY(%(ids)s)), "
            "(SELECT count(*) FROM orders WHERE user_id = ANY(%(ids)s))",
            {"ids": list(user_ids)},
        )[0]

    def check(self, user_ids):
        """What a run did other than erase exactly these users and their
        orders: a list of problems (their rows left; others' rows gone)."""
        problems = []
        users, orders = self.remaining(user_ids)
        if users or orders:
            problems.append(f"{users} users and {orders} orders left")
        total_users, total_orders = self.totals()
        want = (USERS - len(user_ids), (USERS - len(user_ids)) * ORDERS_PER_USER)
        if (total_users, total_orders) != want:
            problems.append(f"{total_users:,} users and {total_orders:,} orders in all, not {want[0]:,} and {want[1]:,}")
        return problems

    def restore(self, user_ids):
        """Puts the deleted users and their orders back (untimed)."""
        ids = list(user_ids)
        self.sql(
            "INSERT INTO users (id, email, created_at) "
            "SELECT u, 'user' || u || '@example.com', '2024-01-01' FROM unnest(%s::bigint[]) AS u "
            "ON CONFLICT DO NOTHING",
            (ids,),
        )
        for k in range(ORDERS_PER_USER):
            self.sql(
                f"INSERT INTO orders (user_id, item) SELECT u, 'item {k}' FROM unnest(%s::bigint[]) AS u "
                "WHERE NOT EXISTS (SELECT 1 FROM orders AS o WHERE o.user_id = u AND o.item = %s)",
                (ids, f"item {k}"),
            )

    def settle(self, limit=None):
        """PostgreSQL's counterpart of waiting for InnoDB's purge: VACUUM
        the last run's dead rows now, so that autovacuum does not take them
        up in the background of a timed run (untimed)."""
        self.sql("VACUUM users, orders")

    def version(self):
        return self.sql("SHOW server_version")[0][0]

    def setting(self, name):
        return self.sql("SELECT current_setting(%s)", (name,))[0][0]

    def sizes(self):
        return dict(self.sql(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "WHERE relname IN ('users', 'orders') AND relkind = 'r' ORDER BY relname"
        ))

    def drop(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        self.admin.execute(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")


class MapDatabase(Database):
    """The map case's database: ``users`` as the other cases' (1,000,000 rows),
    ``sessions`` (3 per user, ``user_id`` indexed, no foreign key) and
    ``invoices`` (1 per user, ``customer_id`` indexed; ``email`` and ``phone``
    nullable, ``name`` not). Every value follows from the row's id, so a run's
    rows can be put back exactly as they were."""

    def __init__(self):
        super().__init__()
        self.seeded_in = None

    def ensure_map_seeded(self, fresh=False):
        self.sql(f"CREATE DATABASE IF NOT EXISTS {MAP_DATABASE}")
        self.server.select_db(MAP_DATABASE)
        tables = {row[0] for row in self.sql("SHOW TABLES")}
        if {"users", "sessions", "invoices"} <= tables and not fresh:
            counts = self.counts()
            if counts == {"users": USERS, "sessions": USERS * SESSIONS_PER_USER, "invoices": USERS, "redacted invoices": 0}:
                log(f"database {MAP_DATABASE}: {counts} (kept)")
                return
        log(f"database {MAP_DATABASE}: creating {USERS:,} users, {USERS * SESSIONS_PER_USER:,} sessions, {USERS:,} invoices")
        started = time.perf_counter()
        for table in ("sessions", "invoices", "users"):
            self.sql(f"DROP TABLE IF EXISTS {table}")
        self.sql(
            """CREATE TABLE users (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 email VARCHAR(100) NOT NULL,
                 created_at DATETIME NOT NULL
               ) ENGINE=InnoDB"""
        )
        self.sql(
            """CREATE TABLE sessions (
                 id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                 user_id BIGINT UNSIGNED NOT NULL,
                 token CHAR(32) NOT NULL,
                 created_at DATETIME NOT NULL,
                 KEY (user_id)
               ) ENGINE=InnoDB"""
        )
        self.sql(
            """CREATE TABLE invoices (
                 id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                 customer_id BIGINT UNSIGNED NOT NULL,
                 email VARCHAR(100) NULL,
                 phone VARCHAR(20) NULL,
                 name VARCHAR(100) NOT NULL,
                 amount_cents INT UNSIGNED NOT NULL,
                 KEY (customer_id)
               ) ENGINE=InnoDB"""
        )
        # MariaDB's SEQUENCE engine, one INSERT ... SELECT per table, in the
        # order of both the primary key and the index: session s belongs to
        # user (s + 2) DIV 3, so user u's are 3u-2, 3u-1 and 3u.
        self.sql(
            f"""INSERT INTO users (id, email, created_at)
                SELECT seq, CONCAT('user', seq, '@example.com'), '2024-01-01'
                FROM seq_1_to_{USERS}"""
        )
        self.sql(
            f"""INSERT INTO sessions (id, user_id, token, created_at)
                SELECT seq, (seq + {SESSIONS_PER_USER - 1}) DIV {SESSIONS_PER_USER},
                       MD5(CONCAT('session-', seq)), '2024-06-01'
                FROM seq_1_to_{USERS * SESSIONS_PER_USER}"""
        )
        self.sql(
            f"""INSERT INTO invoices (id, customer_id, email, phone, name, amount_cents)
                SELECT seq, seq, {self.ORIGINAL['email'].format(id='seq')},
                       {self.ORIGINAL['phone'].format(id='seq')}, {self.ORIGINAL['name'].format(id='seq')},
                       100 + seq % 10000
                FROM seq_1_to_{USERS}"""
        )
        self.sql("ANALYZE TABLE users, sessions, invoices")
        self.seeded_in = time.perf_counter() - started
        log(f"  seeded in {self.seeded_in:.1f} s")

    # An invoice's personal columns as seeded, from its customer's id.
    ORIGINAL = {
        "email": "CONCAT('user', {id}, '@example.com')",
        "phone": "CONCAT('+1555', LPAD({id}, 7, '0'))",
        "name": "CONCAT('User ', {id})",
    }

    def counts(self):
        return {
            "users": self.sql("SELECT COUNT(*) FROM users")[0][0],
            "sessions": self.sql("SELECT COUNT(*) FROM sessions")[0][0],
            "invoices": self.sql("SELECT COUNT(*) FROM invoices")[0][0],
            "redacted invoices": self.sql(
                "SELECT COUNT(*) FROM invoices WHERE email IS NULL OR phone IS NULL OR name = %s", (ERASED_NAME,)
            )[0][0],
        }

    def sizes(self):
        """MB of data and indexes per table, as InnoDB reports them."""
        rows = self.sql(
            """SELECT table_name, (data_length + index_length) / 1e6 FROM information_schema.tables
               WHERE table_schema = %s""",
            (MAP_DATABASE,),
        )
        return {name: float(mb) for name, mb in rows}

    def check(self, user_ids):
        users = sessions = invoices = redacted = 0
        for i in range(0, len(user_ids), 10_000):
            chunk = user_ids[i : i + 10_000]
            users += self.sql("SELECT COUNT(*) FROM users WHERE id IN %s", (chunk,))[0][0]
            sessions += self.sql("SELECT COUNT(*) FROM sessions WHERE user_id IN %s", (chunk,))[0][0]
            row = self.sql(
                """SELECT COUNT(*), COALESCE(SUM(email IS NULL AND phone IS NULL AND name = %s), 0)
                   FROM invoices WHERE customer_id IN %s""",
                (ERASED_NAME, chunk),
            )[0]
            invoices += row[0]
            redacted += int(row[1])
        problems = []
        if users or sessions:
            problems.append(f"{users} users and {sessions} sessions left")
        if invoices != len(user_ids):
            problems.append(f"{invoices} of {len(user_ids)} invoices kept")
        if redacted != len(user_ids):
            problems.append(f"{redacted} of {len(user_ids)} invoices redacted")
        return problems

    def restore(self, user_ids):
        """Puts the users and their sessions back and un-redacts their
        invoices, every value as seeded (untimed)."""
        for i in range(0, len(user_ids), 10_000):
            chunk = user_ids[i : i + 10_000]
            self.sql(
                "INSERT IGNORE INTO users (id, email, created_at) VALUES "
                + ",".join(f"({u},'user{u}@example.com','2024-01-01')" for u in chunk)
            )
            sessions = [SESSIONS_PER_USER * u - k for u in chunk for k in range(SESSIONS_PER_USER)]
            self.sql(
                "INSERT IGNORE INTO sessions (id, user_id, token, created_at) VALUES "
                + ",".join(
                    f"({s},{(s + SESSIONS_PER_USER - 1) // SESSIONS_PER_USER},MD5('session-{s}'),'2024-06-01')"
                    for s in sorted(sessions)
                )
            )
            self.sql(
                "UPDATE invoices SET "
                + ", ".join(f"{column} = {expr.format(id='customer_id')}" for column, expr in self.ORIGINAL.items())
                + " WHERE customer_id IN %s",
                (chunk,),
            )


class ViaDatabase(Database):
    """The via case's database (issue 17): five tables, no foreign keys, one
    character set and collation throughout (the map's via compares
    ``newsletter.email`` with ``users.email``). Every row and value follows
    from an id, as a SQL expression over the sequence engine's ``seq``, so
    that seeding and putting a run's rows back are the same ``INSERT ...
    SELECT`` (the sequence engine answers ``WHERE seq IN (...)`` by range)."""

    TABLES = ("order_items", "shipping", "newsletter", "orders", "users")
    CHARSET = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"
    # (table, columns, SELECT list over seq, rows).
    SEED = {
        "users": (
            "id, email, name, created_at",
            "seq, CONCAT('user', seq, '@example.com'), CONCAT('User ', seq), '2024-01-01'",
            USERS,
        ),
        "orders": (
            "id, user_id, placed_at, status, total_cents",
            f"seq, (seq + {VIA_ORDERS_PER_USER - 1}) DIV {VIA_ORDERS_PER_USER}, "
            "'2024-05-01' + INTERVAL MOD(seq, 365) DAY, 'delivered', 500 + MOD(seq, 20000)",
            USERS * VIA_ORDERS_PER_USER,
        ),
        # Item i is user (i + 4) DIV 5's; the first three of a user's five go
        # on its first order, the other two on its second.
        "order_items": (
            "id, order_id, product_id, quantity, price_cents",
            f"seq, 2 * ((seq + 4) DIV 5) - 1 + ((seq + 4) MOD 5 >= 3), "
            "1 + MOD(seq * 7919, 50000), 1 + MOD(seq, 3), 199 + MOD(seq, 9800)",
            USERS * VIA_ITEMS_PER_USER,
        ),
        "shipping": (
            "id, order_id, address, postcode, carrier",
            "seq, seq, CONCAT(seq, ' Main Street, Springfield'), LPAD(MOD(seq, 100000), 5, '0'), 'post'",
            USERS * VIA_ORDERS_PER_USER,
        ),
        # Every odd user is subscribed.
        "newsletter": (
            "email, subscribed_at",
            "CONCAT('user', seq, '@example.com'), '2024-02-01'",
            USERS,
        ),
    }
    ADDRESS = "CONCAT({id}, ' Main Street, Springfield')"
    # The tables, {charset} for CHARSET.
    DDL = (
        """CREATE TABLE users (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 email VARCHAR(100) NOT NULL,
                 name VARCHAR(100) NOT NULL,
                 created_at DATETIME NOT NULL,
                 UNIQUE KEY (email)
               ) ENGINE=InnoDB {charset}""",
        """CREATE TABLE orders (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 user_id BIGINT UNSIGNED NOT NULL,
                 placed_at DATETIME NOT NULL,
                 status VARCHAR(16) NOT NULL,
                 total_cents INT UNSIGNED NOT NULL,
                 KEY (user_id)
               ) ENGINE=InnoDB {charset}""",
        """CREATE TABLE order_items (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 order_id BIGINT UNSIGNED NOT NULL,
                 product_id INT UNSIGNED NOT NULL,
                 quantity SMALLINT UNSIGNED NOT NULL,
                 price_cents INT UNSIGNED NOT NULL,
                 KEY (order_id)
               ) ENGINE=InnoDB {charset}""",
        """CREATE TABLE shipping (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 order_id BIGINT UNSIGNED NOT NULL,
                 address VARCHAR(200) NULL,
                 postcode VARCHAR(10) NOT NULL,
                 carrier VARCHAR(20) NOT NULL,
                 KEY (order_id)
               ) ENGINE=InnoDB {charset}""",
        """CREATE TABLE newsletter (
                 email VARCHAR(100) PRIMARY KEY,
                 subscribed_at DATETIME NOT NULL
               ) ENGINE=InnoDB {charset}""",
    )

    def __init__(self):
        super().__init__()
        self.seeded_in = None

    @staticmethod
    def orders_of(user_ids):
        return [VIA_ORDERS_PER_USER * u - k for u in user_ids for k in range(VIA_ORDERS_PER_USER)]

    @staticmethod
    def items_of(user_ids):
        return [VIA_ITEMS_PER_USER * u - k for u in user_ids for k in range(VIA_ITEMS_PER_USER)]

    @staticmethod
    def subscribed(user_ids):
        return [u for u in user_ids if u % 2]

    @classmethod
    def rows(cls, user_ids):
        """Rows each entry of the map touches for these users, as the
        summary's ``tables`` names them."""
        n = len(user_ids)
        return {
            "order_items": VIA_ITEMS_PER_USER * n,
            "shipping": VIA_ORDERS_PER_USER * n,
            "newsletter": len(cls.subscribed(user_ids)),
            "orders": VIA_ORDERS_PER_USER * n,
            "users": n,
        }

    def expected_counts(self):
        return {
            "users": USERS,
            "orders": USERS * VIA_ORDERS_PER_USER,
            "order_items": USERS * VIA_ITEMS_PER_USER,
            "shipping": USERS * VIA_ORDERS_PER_USER,
            "newsletter": (USERS + 1) // 2,
            "redacted shipping": 0,
        }

    def ensure_via_seeded(self, fresh=False):
        self.sql(f"CREATE DATABASE IF NOT EXISTS {VIA_DATABASE}")
        self.server.select_db(VIA_DATABASE)
        tables = {row[0] for row in self.sql("SHOW TABLES")}
        if set(self.TABLES) <= tables and not fresh:
            counts = self.counts()
            if counts == self.expected_counts():
                log(f"database {VIA_DATABASE}: {counts} (kept)")
                return
        want = self.expected_counts()
        log(f"database {VIA_DATABASE}: creating " + ", ".join(f"{want[t]:,} {t}" for t in self.TABLES[::-1]))
        started = time.perf_counter()
        for table in self.TABLES:
            self.sql(f"DROP TABLE IF EXISTS {table}")
        for statement in self.DDL:
            self.sql(statement.format(charset=self.CHARSET))
        for table in ("users", "orders", "order_items", "shipping", "newsletter"):
            began = time.perf_counter()
            columns, select, rows = self.SEED[table]
            where = " WHERE MOD(seq, 2) = 1 ORDER BY 1" if table == "newsletter" else ""
            self.sql(f"INSERT INTO {table} ({columns}) SELECT {select} FROM seq_1_to_{rows}{where}")
            log(f"  {table}: {time.perf_counter() - began:.1f} s")
        self.sql("ANALYZE TABLE " + ", ".join(self.TABLES))
        self.seeded_in = time.perf_counter() - started
        log(f"  seeded in {self.seeded_in:.1f} s")

    def counts(self):
        out = {t: self.sql(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("users", "orders", "order_items", "shipping", "newsletter")}
        out["redacted shipping"] = self.sql("SELECT COUNT(*) FROM shipping WHERE address IS NULL")[0][0]
        return out

    def sizes(self):
        rows = self.sql(
            """SELECT table_name, (data_length + index_length) / 1e6 FROM information_schema.tables
               WHERE table_schema = %s""",
            (VIA_DATABASE,),
        )
        return {name: float(mb) for name, mb in rows}

    def check(self, user_ids):
        """What a run left undone for these users: a list of problems."""
        left = {t: 0 for t in ("users", "orders", "order_items", "newsletter")}
        shipping = redacted = 0
        for i in range(0, len(user_ids), 10_000):
            chunk = user_ids[i : i + 10_000]
            orders = self.orders_of(chunk)
            left["users"] += self.sql("SELECT COUNT(*) FROM users WHERE id IN %s", (chunk,))[0][0]
            left["orders"] += self.sql("SELECT COUNT(*) FROM orders WHERE user_id IN %s", (chunk,))[0][0]
            left["order_items"] += self.sql("SELECT COUNT(*) FROM order_items WHERE id IN %s", (self.items_of(chunk),))[0][0]
            emails = [f"user{u}@example.com" for u in chunk]
            left["newsletter"] += self.sql("SELECT COUNT(*) FROM newsletter WHERE email IN %s", (emails,))[0][0]
            row = self.sql(
                "SELECT COUNT(*), COALESCE(SUM(address IS NULL), 0) FROM shipping WHERE order_id IN %s", (orders,)
            )[0]
            shipping += row[0]
            redacted += int(row[1])
        problems = [", ".join(f"{k} {v}" for k, v in left.items() if v) + " left"] if any(left.values()) else []
        want = VIA_ORDERS_PER_USER * len(user_ids)
        if shipping != want:
            problems.append(f"{shipping} of {want} shipping rows kept")
        if redacted != want:
            problems.append(f"{redacted} of {want} shipping rows redacted")
        return problems

    def restore(self, user_ids):
        """Puts every row back as seeded and the addresses too (untimed)."""
        for i in range(0, len(user_ids), 10_000):
            chunk = sorted(user_ids[i : i + 10_000])
            for table, ids in (
                ("users", chunk),
                ("orders", sorted(self.orders_of(chunk))),
                ("order_items", sorted(self.items_of(chunk))),
                ("newsletter", self.subscribed(chunk)),
            ):
                if not ids:
                    continue
                columns, select, rows = self.SEED[table]
                self.sql(
                    f"INSERT IGNORE INTO {table} ({columns}) SELECT {select} FROM seq_1_to_{rows} WHERE seq IN %s",
                    (ids,),
                )
            self.sql(
                f"UPDATE shipping SET address = {self.ADDRESS.format(id='order_id')} WHERE order_id IN %s",
                (self.orders_of(chunk),),
            )


class HeavyDatabase(Database):
    """The heavy case's database (issue 18): ``users`` (100,000 rows) and
    ``events`` (AUTO_INCREMENT BIGINT id, ``user_id`` indexed, no foreign key):
    the heavy user's 2,000,000 rows, ids 1 .. 2,000,000, then one row for each
    other user. Seeded afresh before each way (dropped and made again), from
    MariaDB's sequence engine when the server has it, else by doubling."""

    TABLES = ("events", "users")

    def __init__(self):
        super().__init__()
        self.sequence = None

    def has_sequence(self):
        if self.sequence is None:
            self.sequence = bool(self.sql(
                "SELECT COUNT(*) FROM information_schema.engines WHERE engine = 'SEQUENCE' AND support IN ('YES', 'DEFAULT')"
            )[0][0])
        return self.sequence

    def seed(self):
        """Drops and makes both tables again; returns the seconds it took."""
        started = time.perf_counter()
        self.sql(f"CREATE DATABASE IF NOT EXISTS {HEAVY_DATABASE}")
        self.server.select_db(HEAVY_DATABASE)
        for table in self.TABLES:
            self.sql(f"DROP TABLE IF EXISTS {table}")
        self.sql(
            """CREATE TABLE users (
                 id BIGINT UNSIGNED PRIMARY KEY,
                 email VARCHAR(100) NOT NULL,
                 created_at DATETIME NOT NULL
               ) ENGINE=InnoDB"""
        )
        self.sql(
            """CREATE TABLE events (
                 id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
                 user_id BIGINT UNSIGNED NOT NULL,
                 kind VARCHAR(32) NOT NULL,
                 payload VARCHAR(255) NOT NULL,
                 created_at DATETIME NOT NULL,
                 KEY (user_id)
               ) ENGINE=InnoDB"""
        )
        payload = "CONCAT('{{\"n\":', {n}, ',\"h\":\"', MD5({n}), '\"}}')"
        if self.has_sequence():
            self.sql(
                f"""INSERT INTO users (id, email, created_at)
                    SELECT seq, CONCAT('user', seq, '@example.com'), '2024-01-01' FROM seq_1_to_{HEAVY_USERS}"""
            )
            self.sql(
                f"""INSERT INTO events (id, user_id, kind, payload, created_at)
                    SELECT seq, {HEAVY_USER}, ELT(1 + MOD(seq, 3), 'view', 'click', 'purchase'),
                           {payload.format(n='seq')}, '2024-01-01' + INTERVAL MOD(seq, 86400 * 300) SECOND
                    FROM seq_1_to_{HEAVY_ROWS}"""
            )
            self.sql(
                f"""INSERT INTO events (id, user_id, kind, payload, created_at)
                    SELECT {HEAVY_ROWS} + seq - 1, seq, 'view', {payload.format(n='seq')}, '2024-06-01'
                    FROM seq_2_to_{HEAVY_USERS}"""
            )
        else:
            # Doubling INSERT ... SELECT: 1, 2, 4, ... rows, the last one cut
            # to size; then the other users' rows by doubling on users.
            self.sql("INSERT INTO users (id, email, created_at) VALUES (1, 'user1@example.com', '2024-01-01')")
            while (have := self.sql("SELECT COUNT(*) FROM users")[0][0]) < HEAVY_USERS:
                self.sql(
                    f"""INSERT INTO users (id, email, created_at)
                        SELECT id + {have}, CONCAT('user', id + {have}, '@example.com'), created_at FROM users
                        WHERE id + {have} <= {HEAVY_USERS}"""
                )
            self.sql(
                f"INSERT INTO events (id, user_id, kind, payload, created_at) VALUES "
                f"(1, {HEAVY_USER}, 'click', {payload.format(n='1')}, '2024-01-01')"
            )
            while (have := self.sql("SELECT COUNT(*) FROM events")[0][0]) < HEAVY_ROWS:
                self.sql(
                    f"""INSERT INTO events (id, user_id, kind, payload, created_at)
                        SELECT id + {have}, user_id, ELT(1 + MOD(id + {have}, 3), 'view', 'click', 'purchase'),
                               {payload.format(n=f'(id + {have})')}, created_at + INTERVAL {have} SECOND
                        FROM events WHERE id + {have} <= {HEAVY_ROWS}"""
                )
            self.sql(
                f"""INSERT INTO events (id, user_id, kind, payload, created_at)
                    SELECT {HEAVY_ROWS} + id - 1, id, 'view', {payload.format(n='id')}, '2024-06-01'
                    FROM users WHERE id > 1"""
            )
        self.sql("ANALYZE TABLE users, events")
        return time.perf_counter() - started

    def counts(self):
        return {
            "heavy user's events": self.sql("SELECT COUNT(*) FROM events WHERE user_id = %s", (HEAVY_USER,))[0][0],
            "other events": self.sql("SELECT COUNT(*) FROM events WHERE user_id <> %s", (HEAVY_USER,))[0][0],
            "heavy user": self.sql("SELECT COUNT(*) FROM users WHERE id = %s", (HEAVY_USER,))[0][0],
            "other users": self.sql("SELECT COUNT(*) FROM users WHERE id <> %s", (HEAVY_USER,))[0][0],
        }

    @staticmethod
    def seeded_counts():
        return {"heavy user's events": HEAVY_ROWS, "other events": HEAVY_USERS - 1, "heavy user": 1, "other users": HEAVY_USERS - 1}

    def sizes(self):
        rows = self.sql(
            """SELECT table_name, (data_length + index_length) / 1e6 FROM information_schema.tables
               WHERE table_schema = %s""",
            (HEAVY_DATABASE,),
        )
        return {name: float(mb) for name, mb in rows}

    def history(self):
        return int(self.sql("SHOW GLOBAL STATUS LIKE 'Innodb_history_list_length'")[0][1])


class VerifyDatabase(Database):
    """The verify case's database (issue 19): the via case's five tables and
    an erasure record, no foreign keys, utf8mb4_general_ci throughout. Ids 1
    to VERIFY_IDS; those divisible by VERIFY_LIVE_EVERY are live users with
    every row of the via case's shapes, the others are in the record
    (1,000,000 users) and have no rows, but for three sets drawn from them:
    ``reappeared`` users have every row back, the shipping addresses too;
    ``orders_back`` users have their orders and shipping rows back, the
    addresses redacted (NULL), nothing else; ``newsletter_only`` users (odd)
    have their newsletter row back and nothing else. Each table is one
    ``INSERT ... SELECT`` from the sequence engine, filtered on the row's user."""

    TABLES = ViaDatabase.TABLES + (VERIFY_RECORD,)
    # (table, the row's user as an expression over seq, rows before the filter).
    OWNER = {
        "users": ("seq", VERIFY_IDS),
        "orders": (f"(seq + {VIA_ORDERS_PER_USER - 1}) DIV {VIA_ORDERS_PER_USER}", VERIFY_IDS * VIA_ORDERS_PER_USER),
        "order_items": (f"(seq + {VIA_ITEMS_PER_USER - 1}) DIV {VIA_ITEMS_PER_USER}", VERIFY_IDS * VIA_ITEMS_PER_USER),
        "shipping": (f"(seq + {VIA_ORDERS_PER_USER - 1}) DIV {VIA_ORDERS_PER_USER}", VERIFY_IDS * VIA_ORDERS_PER_USER),
        "newsletter": ("seq", VERIFY_IDS),
    }

    def __init__(self, rng):
        super().__init__()
        self.seeded_in = None
        erased = [u for u in range(1, VERIFY_IDS + 1) if u % VERIFY_LIVE_EVERY]
        drawn = rng.sample(erased, VERIFY_REAPPEARED + VERIFY_ORDERS_BACK + 4 * VERIFY_NEWSLETTER_ONLY)
        self.reappeared = sorted(drawn[:VERIFY_REAPPEARED])
        self.orders_back = sorted(drawn[VERIFY_REAPPEARED : VERIFY_REAPPEARED + VERIFY_ORDERS_BACK])
        odd = [u for u in drawn[VERIFY_REAPPEARED + VERIFY_ORDERS_BACK :] if u % 2]
        self.newsletter_only = sorted(odd[:VERIFY_NEWSLETTER_ONLY])
        self.record_users = len(erased)
        live = VERIFY_IDS // VERIFY_LIVE_EVERY
        self.live = live
        # Who has rows in each table, besides the live users.
        self.back = {
            "users": self.reappeared,
            "orders": self.reappeared + self.orders_back,
            "order_items": self.reappeared,
            "shipping": self.reappeared + self.orders_back,
            "newsletter": [u for u in self.reappeared + self.newsletter_only if u % 2],
        }

    def expected(self):
        """What verify must find, per entry of the map: {table: {user: rows}}
        (the redacted shipping rows of ``orders_back`` and the unreachable
        newsletter rows of ``newsletter_only`` are no finding)."""
        return {
            "order_items": {u: VIA_ITEMS_PER_USER for u in self.reappeared},
            "shipping": {u: VIA_ORDERS_PER_USER for u in self.reappeared},
            "newsletter": {u: 1 for u in self.reappeared if u % 2},
            "orders": {u: VIA_ORDERS_PER_USER for u in self.reappeared + self.orders_back},
            "users": {u: 1 for u in self.reappeared},
        }

    def expected_counts(self):
        live, every = self.live, VERIFY_LIVE_EVERY
        live_odd = len([u for u in range(every, VERIFY_IDS + 1, every) if u % 2])
        return {
            "users": live + len(self.back["users"]),
            "orders": VIA_ORDERS_PER_USER * (live + len(self.back["orders"])),
            "order_items": VIA_ITEMS_PER_USER * (live + len(self.back["order_items"])),
            "shipping": VIA_ORDERS_PER_USER * (live + len(self.back["shipping"])),
            "newsletter": live_odd + len(self.back["newsletter"]),
            VERIFY_RECORD: self.record_users,
            "redacted shipping": VIA_ORDERS_PER_USER * len(self.orders_back),
        }

    def counts(self):
        out = {t: self.sql(f"SELECT COUNT(*) FROM {t}")[0][0] for t in self.TABLES}
        out["redacted shipping"] = self.sql("SELECT COUNT(*) FROM shipping WHERE address IS NULL")[0][0]
        return out

    def ensure_verify_seeded(self, fresh=False):
        self.sql(f"CREATE DATABASE IF NOT EXISTS {VERIFY_DATABASE}")
        self.server.select_db(VERIFY_DATABASE)
        tables = {row[0] for row in self.sql("SHOW TABLES")}
        want = self.expected_counts()
        if set(self.TABLES) <= tables and not fresh and self.counts() == want:
            log(f"database {VERIFY_DATABASE}: {want} (kept)")
            return
        log(f"database {VERIFY_DATABASE}: creating " + ", ".join(f"{want[t]:,} {t}" for t in self.TABLES))
        started = time.perf_counter()
        for table in self.TABLES:
            self.sql(f"DROP TABLE IF EXISTS {table}")
        for statement in ViaDatabase.DDL:
            self.sql(statement.format(charset=ViaDatabase.CHARSET))
        self.sql(
            f"""CREATE TABLE {VERIFY_RECORD} (
                 user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
                 erased_at DATETIME(3) NOT NULL,
                 message_id VARCHAR(128) NOT NULL
               ) ENGINE=InnoDB {ViaDatabase.CHARSET}"""
        )
        live = f"MOD({{u}}, {VERIFY_LIVE_EVERY}) = 0"
        for table in ("users", "orders", "order_items", "shipping", "newsletter"):
            began = time.perf_counter()
            columns, select, _ = ViaDatabase.SEED[table]
            owner, rows = self.OWNER[table]
            back = self.back[table]
            where = live.format(u=owner) + (f" OR {owner} IN ({','.join(map(str, back))})" if back else "")
            if table == "newsletter":
                where = f"MOD(seq, 2) = 1 AND ({where})"
            self.sql(f"INSERT INTO {table} ({columns}) SELECT {select} FROM seq_1_to_{rows} WHERE {where} ORDER BY seq")
            log(f"  {table}: {time.perf_counter() - began:.1f} s")
        self.sql(
            "UPDATE shipping SET address = NULL WHERE order_id IN %s",
            (ViaDatabase.orders_of(self.orders_back),),
        )
        began = time.perf_counter()
        self.sql(
            f"""INSERT INTO {VERIFY_RECORD} (user_id, erased_at, message_id)
                SELECT seq, '2025-01-01' + INTERVAL MOD(seq * 7919, 86400 * 365) SECOND, CONCAT(10000000000 + seq)
                FROM seq_1_to_{VERIFY_IDS} WHERE MOD(seq, {VERIFY_LIVE_EVERY}) <> 0"""
        )
        log(f"  {VERIFY_RECORD}: {time.perf_counter() - began:.1f} s")
        self.sql("ANALYZE TABLE " + ", ".join(self.TABLES))
        self.seeded_in = time.perf_counter() - started
        log(f"  seeded in {self.seeded_in:.1f} s")

    def sizes(self):
        rows = self.sql(
            """SELECT table_name, (data_length + index_length) / 1e6 FROM information_schema.tables
               WHERE table_schema = %s""",
            (VERIFY_DATABASE,),
        )
        return {name: float(mb) for name, mb in rows}


class TrxPoller:
    """The largest transaction of a run, from a side connection: every
    HEAVY_POLL seconds (not less: see there), ``trx_rows_modified`` of each InnoDB transaction
    whose connection has ``database`` selected (so not this one, nor the
    rest of a shared server). A transaction that grows and commits between
    two polls is seen smaller than it was, or not at all: the figure is the
    largest seen."""

    QUERY = """SELECT t.trx_id, t.trx_rows_modified FROM information_schema.innodb_trx AS t
               JOIN information_schema.processlist AS p ON p.id = t.trx_mysql_thread_id
               WHERE p.db = %s"""

    def __init__(self, database):
        self.database = database
        self.conn = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", autocommit=True)
        self.stop = threading.Event()
        self.largest = 0
        self.seen = {}  # trx_id: largest trx_rows_modified seen, for those that modified rows
        self.polls = 0
        self.thread = threading.Thread(target=self.work)

    def work(self):
        with self.conn.cursor() as cursor:
            while not self.stop.is_set():
                began = time.monotonic()
                cursor.execute(self.QUERY, (self.database,))
                for trx_id, rows in cursor.fetchall():
                    rows = int(rows)
                    if rows:
                        self.seen[trx_id] = max(rows, self.seen.get(trx_id, 0))
                        self.largest = max(self.largest, rows)
                self.polls += 1
                self.stop.wait(max(0.0, HEAVY_POLL - (time.monotonic() - began)))

    def __enter__(self):
        self.started = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.conn.close()
        self.seconds = time.monotonic() - self.started

    def result(self):
        return {
            "largest": self.largest,
            "transactions": len(self.seen),
            "polls": self.polls,
            "interval_ms": self.seconds * 1000 / max(1, self.polls),
        }


# --- one timed run -----------------------------------------------------------


def timed(argv, env):
    """Runs argv as a whole process under /usr/bin/time -v. Returns wall
    seconds (measured here), peak RSS in MiB, exit code, stdout, and stderr as
    (seconds since start, line) pairs, stamped as they arrive."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        started = time.perf_counter()
        process = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", tf.name, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        lines = []

        def read_stderr():
            for raw in process.stderr:
                lines.append((time.perf_counter() - started, raw.decode(errors="replace").rstrip("\n")))

        reader = threading.Thread(target=read_stderr)
        reader.start()
        stdout = process.stdout.read().decode(errors="replace")
        code = process.wait()
        wall = time.perf_counter() - started
        reader.join()
        report = Path(tf.name).read_text()
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report).group(1))
    status = re.search(r"Exit status: (\d+)", report)
    return {
        "wall": wall,
        # The machine is shared: the 1-minute load average as the run ended.
        "load": os.getloadavg()[0],
        "rss_mib": rss_kb / 1024,
        "code": int(status.group(1)) if status else code,
        "stdout": stdout,
        "stderr": lines,
    }


def last_json(stdout):
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.host = os.environ["PUBSUB_EMULATOR_HOST"]
        self.emulator = Emulator(self.host)
        self.db = Database()
        self.rng = random.Random(args.seed)
        self.url = f"mysql://root:@127.0.0.1:{DB_PORT}/{DATABASE}"
        self.sub_path = f"projects/{PROJECT}/subscriptions/{SUBSCRIPTION}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PURGE_", "PUBSUB_", "DATABASE_"))}
        for k in ("MAX_MESSAGES", "DRY_RUN", "PULL_TIMEOUT_MS", "LOCK_WAIT_TIMEOUT", "RUST_LOG"):
            env.pop(k, None)
        env["PUBSUB_EMULATOR_HOST"] = self.host
        env["RUST_LOG"] = "info"
        self.env = env

    def rust_argv(self, max_messages=None, url=None, extra=()):
        argv = [self.args.binary, "--subscription", SUBSCRIPTION, "--project", PROJECT, "--database-url", url or self.url]
        if max_messages is not None:
            argv += ["--max-messages", str(max_messages)]
        return argv + list(extra)

    def python_argv(self, max_messages, pull_timeout, url=None, extra=()):
        return [
            self.args.python,
            str(HERE / "reference.py"),
            "--subscription",
            self.sub_path,
            "--database-url",
            url or self.url,
            "--max-messages",
            str(max_messages),
            "--pull-timeout",
            str(pull_timeout),
            *extra,
        ]

    def run(self, who, n, argv, db=None, tables=None, env=None):
        """One run on a fresh backlog of n removals; checked, then restored.
        ``db``: the database the run erases from (the users/orders one by
        default); ``tables``: rows per removed user that the summary's
        ``tables`` must show for each table (a map's runs), or a function of
        the run's users that returns the rows per table; ``env``: the
        process's environment, if not the benchmark's own."""
        db = db or self.db
        self.emulator.fresh_subscription()
        user_ids = self.rng.sample(range(1, USERS + 1), n) if n else []
        if n:
            self.emulator.publish_removals(user_ids)
        db.settle()
        # The emulator hands published messages to its subscriptions in the
        # background: give it time, or a Pull may find nothing yet and end the run.
        time.sleep(0.2 + n / 50_000)
        result = timed(argv, env or self.env)
        summary = last_json(result["stdout"])
        result["summary"] = summary
        problems = []
        if result["code"] != 0:
            problems.append(f"exit {result['code']}")
        if summary is None:
            problems.append("no summary line")
        else:
            if summary.get("received") != n:
                problems.append(f"received {summary.get('received')} of {n}")
            if summary.get("acked") != n:
                problems.append(f"acked {summary.get('acked')} of {n}")
            if summary.get("deleted_rows") != n:
                problems.append(f"deleted {summary.get('deleted_rows')} of {n}")
            if tables is not None and n:
                want = tables(user_ids) if callable(tables) else {t: k * n for t, k in tables.items()}
                if summary.get("tables") != want:
                    problems.append(f"tables {summary.get('tables')}, not {want}")
        if n:
            problems += db.check(user_ids)
            db.restore(user_ids)
        result["ok"] = not problems
        extra = ""
        if who == "python" and summary:
            extra = f", task {summary['task_ms'] / 1000:.3f} s, imports {summary['import_ms'] / 1000:.3f} s"
        log(
            f"  {who:<6} {n:>7,} msgs: {result['wall']:.3f} s, {result['rss_mib']:.1f} MiB{extra}, load {result['load']:.2f}"
            + ("" if result["ok"] else f"  ** {'; '.join(problems)} **")
        )
        if not result["ok"]:
            tail = "\n".join(line for _, line in result["stderr"][-15:])
            log(f"    stderr tail:\n{tail}")
        return result


    def floor(self, n):
        """The job's DELETE and COMMIT alone (READ COMMITTED, as the job runs
        it), from PyMySQL on an open connection: what MariaDB itself takes."""
        user_ids = sorted(self.rng.sample(range(1, USERS + 1), n))
        self.db.settle()
        time.sleep(1.0)  # the gap that publishing 10,000 events leaves before a run
        db = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", database=DATABASE)
        statement = "DELETE FROM `users` WHERE `id` IN (" + ",".join(map(str, user_ids)) + ")"
        started = time.perf_counter()
        with db.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")  # as the job's
            rows = cursor.execute(statement)
        db.commit()
        seconds = time.perf_counter() - started
        db.close()
        self.db.restore(user_ids)
        ok = rows == n
        log(f"  floor  {n:>7,} ids:  {seconds:.3f} s (DELETE and COMMIT only)" + ("" if ok else f" ** deleted {rows} **"))
        return {"wall": seconds, "ok": ok}

    def postgres_floor(self, db, n):
        """The PostgreSQL case's floor: the job's DELETE, as it writes it (one
        simple query, the ids as literals), and COMMIT alone, from psycopg on
        an open connection at the server's READ COMMITTED (the job's level):
        what PostgreSQL itself takes. Checked and restored as a run is."""
        user_ids = sorted(self.rng.sample(range(1, USERS + 1), n))
        db.settle()
        time.sleep(1.0)  # the gap that publishing 10,000 events leaves before a run
        conn = db.psycopg.connect(db.url())
        statement = 'DELETE FROM "users" WHERE "id" IN (' + ",".join(map(str, user_ids)) + ")"
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute(statement)
            rows = cursor.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
        conn.close()
        problems = db.check(user_ids)
        db.restore(user_ids)
        if rows != n:
            problems.append(f"deleted {rows}")
        log(
            f"  floor  {n:>7,} ids:  {seconds:.3f} s (DELETE and COMMIT only), load {os.getloadavg()[0]:.2f}"
            + ("" if not problems else f" ** {'; '.join(problems)} **")
        )
        return {"wall": seconds, "ok": not problems, "rows": rows, "load": os.getloadavg()[0]}

    def postgres_case(self):
        """Issue 20: the compare case on PostgreSQL. 10,000 removals on its
        1,000,000 users (2,000,000 orders by cascade), user-purge against
        the Python reference on psycopg, alternating, with the floor before
        each pair, on a database of its own (seeded first; dropped after,
        unless --keep-postgres-database); then one user-purge run with
        its debug lines, for its phases."""
        db = PostgresDatabase()
        try:
            db.ensure_seeded()
            url = db.url()
            rust_argv = self.rust_argv(url=url)
            python_argv = self.python_argv(10_000, PYTHON_PULL_TIMEOUT, url=url)
            if not self.args.no_warmup:
                log("postgres warm-up (not counted): one run of each on 10,000 messages")
                self.run("rust", 10_000, rust_argv, db=db)
                self.run("python", 10_000, python_argv, db=db)
            log(f"postgres: 10,000 messages, alternating, {self.args.reps} runs each")
            rust, python, floor, order_run = [], [], [], []
            for i in range(self.args.reps):
                floor.append(self.postgres_floor(db, 10_000))
                order_run.append(("floor", floor[-1]))
                order = [("rust", rust_argv, rust), ("python", python_argv, python)]
                if i % 2:
                    order.reverse()
                for who, argv, bucket in order:
                    result = self.run(who, 10_000, argv, db=db)
                    bucket.append(result)
                    order_run.append((who, result))
            log("postgres: one user-purge run with RUST_LOG=user_purge=debug, for its phases")
            debug = self.run("rust", 10_000, rust_argv, db=db, env={**self.env, "RUST_LOG": "user_purge=debug"})
            after = db.totals()
            log(f"  after the last restore: {after[0]:,} users, {after[1]:,} orders")
            return {
                "rust": rust,
                "python": python,
                "floor": floor,
                "order": order_run,
                "debug": debug,
                "after": after,
                "sizes": db.sizes(),
                "seeded_in": db.seeded_in,
                "version": db.version(),
                "shared_buffers": db.setting("shared_buffers"),
                "synchronous_commit": db.setting("synchronous_commit"),
                "argv": (rust_argv, python_argv),
            }
        finally:
            if self.args.keep_postgres_database:
                db.conn.close()
            else:
                db.drop()
            db.admin.close()

    def map_floor(self, db, statements, n):
        """The map's statements and COMMIT alone (READ COMMITTED, as the job
        runs them), from PyMySQL on an open connection, each timed: what
        MariaDB itself takes for the map."""
        user_ids = sorted(self.rng.sample(range(1, USERS + 1), n))
        db.settle()
        time.sleep(1.0)
        conn = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", database=MAP_DATABASE)
        each, rows = {}, {}
        started = time.perf_counter()
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            for table, sql in statements:
                began = time.perf_counter()
                rows[table] = cursor.execute(sql, (user_ids,))
                each[table] = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        conn.commit()
        each["commit"] = (time.perf_counter() - began) * 1000
        seconds = time.perf_counter() - started
        conn.close()
        problems = db.check(user_ids)
        db.restore(user_ids)
        ok = rows == {t: k * n for t, k in MAP_ROWS.items()} and not problems
        log(
            f"  floor  {n:>7,} ids:  {seconds:.3f} s (the map's statements and COMMIT only: "
            + ", ".join(f"{t} {ms:.0f} ms" for t, ms in each.items())
            + f"), load {os.getloadavg()[0]:.2f}"
            + ("" if ok else f" ** rows {rows}; {'; '.join(problems)} **")
        )
        return {"wall": seconds, "ok": ok, "statement_ms": each, "load": os.getloadavg()[0]}

    def map_case(self):
        """Issue 11: 10,000 removals over the three-table map, user-purge
        against the Python reference doing the same statements, alternating,
        on a database of its own (seeded first; dropped after, unless
        --keep-map-database)."""
        import importlib.util  # the reference's own reading of the map, for the floor

        spec = importlib.util.spec_from_file_location("reference", HERE / "reference.py")
        reference = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(reference)
        statements = reference.map_statements(MAP_FILE)
        db = MapDatabase()
        try:
            db.ensure_map_seeded()
            url = f"mysql://root:@127.0.0.1:{DB_PORT}/{MAP_DATABASE}"
            rust_argv = self.rust_argv(url=url, extra=["--erasure-map", str(MAP_FILE)])
            python_argv = self.python_argv(10_000, PYTHON_PULL_TIMEOUT, url=url, extra=["--map", str(MAP_FILE)])
            if not self.args.no_warmup:
                log("map warm-up (not counted): one run of each on 10,000 messages")
                self.run("rust", 10_000, rust_argv, db=db, tables=MAP_ROWS)
                self.run("python", 10_000, python_argv, db=db, tables=MAP_ROWS)
            log(f"map: 10,000 messages, alternating, {self.args.reps} runs each")
            rust, python, floor = [], [], []
            for i in range(self.args.reps):
                floor.append(self.map_floor(db, statements, 10_000))
                order = [("rust", rust_argv, rust), ("python", python_argv, python)]
                if i % 2:
                    order.reverse()
                for who, argv, bucket in order:
                    bucket.append(self.run(who, 10_000, argv, db=db, tables=MAP_ROWS))
            after = db.counts()
            log(f"  after the last restore: {after}")
            return {
                "rust": rust,
                "python": python,
                "floor": floor,
                "statements": statements,
                "after": after,
                "sizes": db.sizes(),
                "seeded_in": db.seeded_in,
                "argv": (rust_argv, python_argv),
            }
        finally:
            if not self.args.keep_map_database:
                db.sql(f"DROP DATABASE IF EXISTS {MAP_DATABASE}")

    # The via map's five statements written by hand, as the floor: the
    # multi-table DELETE ... JOIN and UPDATE ... JOIN one would write for
    # bench/erasure-map-via.toml, in its order, over the same id list.
    VIA_FLOOR = [
        ("order_items", "DELETE oi FROM order_items AS oi JOIN orders AS o ON oi.order_id = o.id WHERE o.user_id IN ({ids})"),
        ("shipping", "UPDATE shipping AS s JOIN orders AS o ON s.order_id = o.id SET s.address = NULL WHERE o.user_id IN ({ids})"),
        ("newsletter", "DELETE n FROM newsletter AS n JOIN users AS u ON n.email = u.email WHERE u.id IN ({ids})"),
        ("orders", "DELETE FROM orders WHERE user_id IN ({ids})"),
        ("users", "DELETE FROM users WHERE id IN ({ids})"),
    ]
    # The single-table form of the first, for information: no semi-join for
    # a single-table DELETE before MariaDB 11.1.
    VIA_SUBQUERY = "DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id IN ({ids}))"

    def via_connect(self):
        conn = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", database=VIA_DATABASE, autocommit=False)
        with conn.cursor() as cursor:
            # As the job's session: READ COMMITTED (the server logs no statements).
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def via_floor(self, db, n):
        """The floor: the five statements by hand and COMMIT, in one
        transaction on a connection opened beforehand, timed from BEGIN to
        COMMIT (each statement too), on a fresh draw of n users; checked and
        restored as a user-purge run is."""
        user_ids = sorted(self.rng.sample(range(1, USERS + 1), n))
        ids = ",".join(map(str, user_ids))
        statements = [(t, sql.format(ids=ids)) for t, sql in self.VIA_FLOOR]
        conn = self.via_connect()
        db.settle()
        time.sleep(1.0)  # the gap that publishing 10,000 events leaves before a run
        each, rows = {}, {}
        with conn.cursor() as cursor:
            started = time.perf_counter()
            conn.begin()
            for table, sql in statements:
                began = time.perf_counter()
                rows[table] = cursor.execute(sql)
                each[table] = (time.perf_counter() - began) * 1000
            began = time.perf_counter()
            conn.commit()
            ended = time.perf_counter()
        each["commit"] = (ended - began) * 1000
        seconds = ended - started
        conn.close()
        load = os.getloadavg()[0]
        problems = db.check(user_ids)
        db.restore(user_ids)
        want = ViaDatabase.rows(user_ids)
        if rows != want:
            problems.append(f"rows {rows}, not {want}")
        ok = not problems
        log(
            f"  floor  {n:>7,} ids:  {seconds:.3f} s BEGIN to COMMIT ("
            + ", ".join(f"{t} {ms:.0f} ms" for t, ms in each.items())
            + f"), load {load:.2f}"
            + ("" if ok else f" ** {'; '.join(problems)} **")
        )
        return {"wall": seconds, "ok": ok, "statement_ms": each, "rows": rows, "load": load}

    def via_single_table(self, db, n):
        """Once, for information: the order_items statement alone, first as
        the multi-table DELETE ... JOIN, then on another draw of users as the
        single-table DELETE ... WHERE order_id IN (SELECT ...), each in a
        transaction of its own that is rolled back (nothing to restore), with
        its EXPLAIN and the rows the server read for it."""
        out = {}
        for form, sql in (("join", self.VIA_FLOOR[0][1]), ("subquery", self.VIA_SUBQUERY)):
            user_ids = sorted(self.rng.sample(range(1, USERS + 1), n))
            statement = sql.format(ids=",".join(map(str, user_ids)))
            conn = self.via_connect()
            with conn.cursor(pymysql.cursors.DictCursor) as cursor:
                cursor.execute(f"SET SESSION max_statement_time = {VIA_SUBQUERY_LIMIT}")
                cursor.execute("EXPLAIN " + statement)
                explain = cursor.fetchall()
                db.settle()
                time.sleep(1.0)
                handler_status = "SHOW SESSION STATUS LIKE 'Handler_read%'"
                cursor.execute(handler_status)
                before = {r["Variable_name"]: int(r["Value"]) for r in cursor.fetchall()}
                conn.begin()
                started = time.perf_counter()
                try:
                    rows = cursor.execute(statement)
                    error = None
                except pymysql.MySQLError as e:
                    rows, error = None, f"{e.args[0]}: {e.args[1]}"
                seconds = time.perf_counter() - started
                cursor.execute(handler_status)
                handler = {r["Variable_name"]: int(r["Value"]) - before.get(r["Variable_name"], 0) for r in cursor.fetchall()}
                began = time.perf_counter()
                conn.rollback()
                rollback = time.perf_counter() - began
            conn.close()
            read = sum(handler.values())
            out[form] = {
                "sql": sql,
                "seconds": seconds,
                "rows": rows,
                "error": error,
                "explain": explain,
                "handler": handler,
                "rollback": rollback,
                "load": os.getloadavg()[0],
            }
            log(
                f"  order_items alone, {form}: {seconds:.3f} s, {rows} rows, {read:,} handler reads"
                + (f" ** {error} **" if error else "")
                + f" (rolled back in {rollback:.2f} s), load {os.getloadavg()[0]:.2f}"
            )
        return out

    def via_case(self):
        """Issue 17: 10,000 removals over the via map, user-purge's erase
        transaction (its own log line) against the floor, the same five
        statements written by hand on an open connection; alternating, on a
        database of its own (seeded first; dropped after, unless
        --keep-via-database)."""
        db = ViaDatabase()
        uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
        try:
            up_before = uptime()
            db.ensure_via_seeded()
            url = f"mysql://root:@127.0.0.1:{DB_PORT}/{VIA_DATABASE}"
            argv = self.rust_argv(url=url, extra=["--erasure-map", str(VIA_MAP_FILE)])
            if not self.args.no_warmup:
                log("via warm-up (not counted): one run of each on 10,000 messages")
                self.run("rust", 10_000, argv, db=db, tables=ViaDatabase.rows)
                self.via_floor(db, 10_000)
            log(f"via: 10,000 messages, alternating, {self.args.reps} runs each")
            rust, floor = [], []
            for i in range(self.args.reps):
                order = ["rust", "floor"] if i % 2 == 0 else ["floor", "rust"]
                for who in order:
                    if who == "rust":
                        rust.append(self.run("rust", 10_000, argv, db=db, tables=ViaDatabase.rows))
                    else:
                        floor.append(self.via_floor(db, 10_000))
            after = db.counts()
            log(f"  after the last restore: {after}")
            single = None if self.args.no_via_subquery else self.via_single_table(db, 10_000)
            return {
                "rust": rust,
                "floor": floor,
                "single": single,
                "after": after,
                "expected": db.expected_counts(),
                "sizes": db.sizes(),
                "seeded_in": db.seeded_in,
                "argv": argv,
                "uptime": (up_before, uptime()),
            }
        finally:
            if not self.args.keep_via_database:
                db.sql(f"DROP DATABASE IF EXISTS {VIA_DATABASE}")

    # The verify case's floor (issue 19): the same checks written by hand,
    # one query per entry of the map, each joining the whole record and
    # grouping by user.
    VERIFY_FLOOR = [
        ("order_items", f"SELECT o.user_id, COUNT(*) FROM {VERIFY_RECORD} AS r JOIN orders AS o ON o.user_id = r.user_id "
         "JOIN order_items AS oi ON oi.order_id = o.id GROUP BY o.user_id"),
        ("shipping", f"SELECT o.user_id, COUNT(*) FROM {VERIFY_RECORD} AS r JOIN orders AS o ON o.user_id = r.user_id "
         "JOIN shipping AS s ON s.order_id = o.id WHERE s.address IS NOT NULL GROUP BY o.user_id"),
        ("newsletter", f"SELECT u.id, COUNT(*) FROM {VERIFY_RECORD} AS r JOIN users AS u ON u.id = r.user_id "
         "JOIN newsletter AS n ON n.email = u.email GROUP BY u.id"),
        ("orders", f"SELECT o.user_id, COUNT(*) FROM {VERIFY_RECORD} AS r JOIN orders AS o ON o.user_id = r.user_id GROUP BY o.user_id"),
        ("users", f"SELECT u.id, COUNT(*) FROM {VERIFY_RECORD} AS r JOIN users AS u ON u.id = r.user_id GROUP BY u.id"),
    ]

    def verify_env(self):
        """The benchmark's environment without the job's own settings, so
        that only the flags given count."""
        env = dict(self.env)
        for k in ("ERASURE_MAP", "ERASURE_RECORD", "CHUNK_ROWS", "REPLICA_URLS", "PUSHGATEWAY_URL", "METRICS_INSTANCE"):
            env.pop(k, None)
        return env

    def verify_rust(self, db, argv):
        """One whole-process run of user-purge verify, checked: exit 1, the
        whole record checked, and exactly the expected findings."""
        time.sleep(1.0)
        load_before = os.getloadavg()[0]
        result = timed(argv, self.verify_env())
        result["load_before"] = load_before
        lines = [json.loads(x) for x in result["stdout"].splitlines() if x.startswith("{")]
        findings = [x for x in lines if "finding" in x]
        closing = next((x for x in reversed(lines) if x.get("command") == "verify"), None)
        result["summary"] = closing
        want = db.expected()
        problems = []
        if result["code"] != 1:
            problems.append(f"exit {result['code']}, not 1")
        if closing is None:
            problems.append("no closing line")
        else:
            n = sum(len(users) for users in want.values())
            if closing.get("users_checked") != db.record_users:
                problems.append(f"users_checked {closing.get('users_checked')} of {db.record_users:,}")
            if closing.get("findings") != n:
                problems.append(f"findings {closing.get('findings')}, not {n}")
            rows = {t: sum(users.values()) for t, users in want.items() if users}
            if closing.get("tables") != rows:
                problems.append(f"tables {closing.get('tables')}, not {rows}")
        got = {}
        for f in findings:
            got.setdefault(f["table"], {})[f["user_id"]] = f["rows"]
        if got != {t: users for t, users in want.items() if users}:
            problems.append("the finding lines are not the expected users and rows")
        result["ok"] = not problems
        log(
            f"  verify {db.record_users:,} users: {result['wall']:.3f} s, {result['rss_mib']:.1f} MiB, "
            f"{(closing or {}).get('findings')} findings, load {load_before:.2f} → {result['load']:.2f}"
            + ("" if result["ok"] else f"  ** {'; '.join(problems)} **")
        )
        if not result["ok"]:
            tail = "\n".join(line for _, line in result["stderr"][-15:])
            log(f"    stderr tail:\n{tail}")
        return result

    def verify_connect(self):
        conn = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", database=VERIFY_DATABASE, autocommit=True)
        with conn.cursor() as cursor:
            # As verify's session.
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def verify_floor(self, db):
        """The floor: VERIFY_FLOOR's five queries, each read to the end, on a
        connection opened beforehand; timed from the first to the last row
        of the last, each query too; checked against the expected findings."""
        conn = self.verify_connect()
        time.sleep(1.0)
        load_before = os.getloadavg()[0]
        each, got = {}, {}
        with conn.cursor() as cursor:
            started = time.perf_counter()
            for table, sql in self.VERIFY_FLOOR:
                began = time.perf_counter()
                cursor.execute(sql)
                got[table] = {int(u): int(n) for u, n in cursor.fetchall()}
                each[table] = (time.perf_counter() - began) * 1000
            seconds = time.perf_counter() - started
        conn.close()
        load = os.getloadavg()[0]
        ok = got == db.expected()
        log(
            f"  floor  {db.record_users:,} users: {seconds:.3f} s ("
            + ", ".join(f"{t} {ms:.0f} ms" for t, ms in each.items())
            + f"), {sum(len(u) for u in got.values())} findings, load {load_before:.2f} → {load:.2f}"
            + ("" if ok else " ** not the expected findings **")
        )
        return {"wall": seconds, "ok": ok, "statement_ms": each, "load_before": load_before, "load": load,
                "findings": sum(len(u) for u in got.values())}

    def verify_page(self, db):
        """Once, for information: one page of the record (VERIFY_PAGE users
        from its middle) checked both ways, each query timed with its
        session's Handler_read_% counters and its EXPLAIN: verify's
        statements over the page's ids in an IN list, and the floor's joins
        limited to the page's range of the record."""
        conn = self.verify_connect()
        out = {}
        with conn.cursor() as cursor:
            cursor.execute(
                f"SELECT user_id FROM {VERIFY_RECORD} WHERE user_id > %s ORDER BY user_id LIMIT {VERIFY_PAGE}",
                (VERIFY_IDS // 2,),
            )
            ids = [r[0] for r in cursor.fetchall()]
            after, last = VERIFY_IDS // 2, ids[-1]
            listed = ",".join(map(str, ids))
            for form, statements in (
                ("in", [(t, sql.replace("(...)", f"({listed})")) for t, sql in verify_statements()]),
                ("recorded", verify_statements((after, last))),
                ("proposed", verify_proposed(after, last)),
                ("join", [(t, sql.replace(" GROUP BY", f"{' AND' if ' WHERE ' in sql else ' WHERE'} r.user_id > {after} "
                                                        f"AND r.user_id <= {last} GROUP BY", 1))
                          for t, sql in self.VERIFY_FLOOR]),
            ):
                rows = out[form] = {}
                for table, sql in statements:
                    cursor.execute("EXPLAIN " + sql)
                    names = [d[0] for d in cursor.description]
                    explain = [dict(zip(names, r)) for r in cursor.fetchall()]
                    cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
                    before = {k: int(v) for k, v in cursor.fetchall()}
                    began = time.perf_counter()
                    cursor.execute(sql)
                    found = len(cursor.fetchall())
                    ms = (time.perf_counter() - began) * 1000
                    cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read%'")
                    handler = {k: int(v) - before.get(k, 0) for k, v in cursor.fetchall()}
                    rows[table] = {"ms": ms, "found": found, "handler": handler, "explain": explain,
                                   "sql": sql if form == "join" else None}
                log(f"  one page ({len(ids):,} users), {form}: " + ", ".join(f"{t} {r['ms']:.0f} ms" for t, r in rows.items())
                    + f", load {os.getloadavg()[0]:.2f}")
            out["page"] = (after, last, len(ids))
        conn.close()
        return out

    def verify_case(self):
        """Issue 19: user-purge verify over a 1,000,000-user erasure record
        and the via case's five-entry map, whole process, against the floor,
        the same checks as five joins with the record by hand; alternating,
        on a database of its own (seeded first; dropped after, unless
        --keep-verify-database)."""
        db = VerifyDatabase(random.Random(self.args.seed))
        uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
        try:
            up_before = uptime()
            db.ensure_verify_seeded()
            counts = db.counts()
            if counts != db.expected_counts():
                log(f"  ** seeded {counts}, not {db.expected_counts()} **")
            db.settle(limit=120)
            url = f"mysql://root:@127.0.0.1:{DB_PORT}/{VERIFY_DATABASE}"
            argv = [self.args.binary, "verify", "--database-url", url, "--erasure-map", str(VERIFY_MAP_FILE),
                    "--erasure-record", VERIFY_RECORD]
            if not self.args.no_warmup:
                log("verify warm-up (not counted): one run of each")
                self.verify_rust(db, argv)
                self.verify_floor(db)
            log(f"verify: {db.record_users:,} recorded users, alternating, {self.args.reps} runs each")
            rust, floor, loads = [], [], []
            for i in range(self.args.reps):
                order = ["rust", "floor"] if i % 2 == 0 else ["floor", "rust"]
                for who in order:
                    if who == "rust":
                        rust.append(self.verify_rust(db, argv))
                    else:
                        floor.append(self.verify_floor(db))
            page = self.verify_page(db)
            return {
                "rust": rust,
                "floor": floor,
                "page": page,
                "db": db,
                "counts": db.counts(),
                "sizes": db.sizes(),
                "argv": argv,
                "uptime": (up_before, uptime()),
            }
        finally:
            if not self.args.keep_verify_database:
                db.sql(f"DROP DATABASE IF EXISTS {VERIFY_DATABASE}")

    def heavy_fresh(self, db, way):
        """Seeds the heavy case's tables afresh and waits for InnoDB's purge."""
        seconds = db.seed()
        db.seeded_sizes = db.sizes()
        db.settle(limit=self.args.heavy_settle)
        log(f"  {way}: seeded {HEAVY_ROWS:,} + {HEAVY_USERS - 1:,} events, {HEAVY_USERS:,} users in {seconds:.1f} s"
            f" (history list {db.history():,} after settling), load {os.getloadavg()[0]:.2f}")
        return seconds

    def heavy_checked(self, db, way, result, want_users_gone):
        """Fills in the result's checks of the database: the heavy user's
        events gone (and its users row when ``want_users_gone``), everyone
        else's left."""
        after = db.counts()
        want = HeavyDatabase.seeded_counts()
        want["heavy user's events"] = 0
        if want_users_gone:
            want["heavy user"] = 0
        problems = result.setdefault("problems", [])
        if after != want:
            problems.append(f"left {after}, not {want}")
        result["after"] = after
        result["ok"] = not problems
        t = result["trx"]
        log(
            f"  {way:<11} {result['wall']:.2f} s, {HEAVY_ROWS / result['wall']:,.0f} rows/s, largest transaction "
            f"{t['largest']:,} rows ({t['transactions']} seen in {t['polls']} polls, every {t['interval_ms']:.0f} ms), "
            f"load {result['load_before']:.2f} → {result['load']:.2f}"
            + ("" if result["ok"] else f"  ** {'; '.join(problems)} **")
        )
        if not result["ok"] and result.get("stderr"):
            tail = "\n".join(line for _, line in result["stderr"][-15:])
            log(f"    stderr tail:\n{tail}")
        return result

    def heavy_rust(self, db, way, url):
        """user-purge on one USER_REMOVED event for the heavy user, the map
        chunked (default --chunk-rows) or atomic (--chunk-rows 1000000)."""
        seeded = self.heavy_fresh(db, way)
        map_file, chunk = (HEAVY_MAP_CHUNKED, None) if way == "chunked" else (HEAVY_MAP_ATOMIC, HEAVY_ATOMIC_CHUNK_ROWS)
        extra = ["--erasure-map", str(map_file), "--statement-timeout", "600", "--max-duration", "3600"]
        if chunk is not None:
            extra += ["--chunk-rows", str(chunk)]
        argv = self.rust_argv(url=url, extra=extra)
        self.emulator.fresh_subscription()
        self.emulator.publish_removals([HEAVY_USER])
        time.sleep(0.5)  # the emulator's fan-out to the subscription
        load_before = os.getloadavg()[0]
        with TrxPoller(HEAVY_DATABASE) as poller:
            result = timed(argv, self.env)
        result.update(trx=poller.result(), load_before=load_before, argv=argv, seeded=seeded)
        summary = result["summary"] = last_json(result["stdout"])
        problems = result["problems"] = []
        if result["code"] != 0:
            problems.append(f"exit {result['code']}")
        if summary is None:
            problems.append("no summary line")
        else:
            for key in ("received", "acked"):
                if summary.get(key) != 1:
                    problems.append(f"{key} {summary.get(key)} of 1")
            want = {"events": HEAVY_ROWS, "users": 1}
            if summary.get("tables") != want:
                problems.append(f"tables {summary.get('tables')}, not {want}")
        return self.heavy_checked(db, way, result, want_users_gone=True)

    def heavy_floor(self, db):
        """The floor: DELETE FROM events WHERE user_id = 1 and COMMIT, on a
        connection opened beforehand (READ COMMITTED, as the job's session),
        timed from the statement to the end of COMMIT."""
        seeded = self.heavy_fresh(db, "floor")
        conn = pymysql.connect(host="127.0.0.1", port=DB_PORT, user="root", database=HEAVY_DATABASE, autocommit=False)
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cursor.execute("SET SESSION max_statement_time = 600")
            time.sleep(1.0)
            load_before = os.getloadavg()[0]
            with TrxPoller(HEAVY_DATABASE) as poller:
                started = time.perf_counter()
                rows = cursor.execute(f"DELETE FROM events WHERE user_id = {HEAVY_USER}")
                deleted = time.perf_counter()
                conn.commit()
                ended = time.perf_counter()
        conn.close()
        result = {
            "wall": ended - started,
            "statement": deleted - started,
            "commit": ended - deleted,
            "load_before": load_before,
            "load": os.getloadavg()[0],
            "trx": poller.result(),
            "seeded": seeded,
            "problems": [] if rows == HEAVY_ROWS else [f"deleted {rows} rows"],
        }
        return self.heavy_checked(db, "floor", result, want_users_gone=False)

    def heavy_pt_archiver(self, db):
        """pt-archiver --purge in chunks of 10,000, each committed (the events
        only: it knows nothing of the users row)."""
        seeded = self.heavy_fresh(db, "pt-archiver")
        argv = [
            self.args.pt_archiver,
            "--source", f"h=127.0.0.1,P={DB_PORT},u=root,D={HEAVY_DATABASE},t=events",
            "--purge", "--where", f"user_id = {HEAVY_USER}", "--limit", str(HEAVY_PT_LIMIT),
            "--commit-each", "--bulk-delete", "--no-check-charset",
            # Without it pt-archiver never takes the row with the table's
            # largest id (it keeps AUTO_INCREMENT from going back on a
            # restart before MySQL 8): a user whose row is the newest would
            # keep it.
            "--no-safe-auto-increment",
            "--statistics",
        ]
        time.sleep(1.0)
        load_before = os.getloadavg()[0]
        with TrxPoller(HEAVY_DATABASE) as poller:
            result = timed(argv, self.env)
        result.update(trx=poller.result(), load_before=load_before, argv=argv, seeded=seeded)
        result["problems"] = [] if result["code"] == 0 else [f"exit {result['code']}"]
        m = re.search(r"^DELETE (\d+)$", result["stdout"], re.M)
        if not m or int(m.group(1)) != HEAVY_ROWS:
            result["problems"].append(f"its statistics say DELETE {m.group(1) if m else 'n/a'}")
        return self.heavy_checked(db, "pt-archiver", result, want_users_gone=False)

    def heavy_case(self):
        """Issue 18: one user's 2,000,000 events rows erased three ways (and
        the floor), each on a freshly seeded database."""
        db = HeavyDatabase()
        ways = [w for w in self.args.heavy_ways.split(",") if w]
        unknown = set(ways) - set(HEAVY_WAYS)
        if unknown:
            raise SystemExit(f"--heavy-ways: no way named {', '.join(sorted(unknown))} (the ways: {', '.join(HEAVY_WAYS)})")
        if "pt-archiver" in ways and not shutil.which(self.args.pt_archiver):
            log(f"  no {self.args.pt_archiver} on PATH (apt-get install percona-toolkit): skipping that way")
            ways.remove("pt-archiver")
        uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
        url = f"mysql://root:@127.0.0.1:{DB_PORT}/{HEAVY_DATABASE}"
        out = {w: [] for w in ways}
        try:
            up_before = uptime()
            for rep in range(self.args.heavy_reps):
                for way in ways:
                    if way in ("chunked", "atomic"):
                        out[way].append(self.heavy_rust(db, way, url))
                    elif way == "floor":
                        out[way].append(self.heavy_floor(db))
                    else:
                        out[way].append(self.heavy_pt_archiver(db))
            return {
                "ways": out,
                "uptime": (up_before, uptime()),
                "sequence": db.has_sequence(),
                "pt_version": subprocess.run([self.args.pt_archiver, "--version"], capture_output=True, text=True).stdout.strip()
                if "pt-archiver" in ways else None,
                "sizes": getattr(db, "seeded_sizes", {}),
            }
        finally:
            if not self.args.keep_heavy_database:
                db.sql(f"DROP DATABASE IF EXISTS {HEAVY_DATABASE}")

    def drain(self, n, batch):
        """One run of user-purge over a backlog of n removals (distinct users
        in random order: with n = 1,000,000, every user of the table), taken
        in rounds of ``batch``, on a freshly seeded database of its own that
        is dropped afterwards."""
        db = Database()
        try:
            db.ensure_seeded(DRAIN_DATABASE, fresh=True)
            self.emulator.fresh_subscription()
            user_ids = self.rng.sample(range(1, USERS + 1), n)
            started = time.perf_counter()
            self.emulator.publish_removals(user_ids)
            publish = time.perf_counter() - started
            log(f"  published {n:,} events in {publish:.1f} s")
            # The seeding and publishing leave InnoDB a purge backlog and the
            # emulator a fan-out to finish; neither should run inside the timing.
            db.settle(limit=300)
            time.sleep(0.2 + n / 50_000)
            argv = self.rust_argv(
                n,
                url=f"mysql://root:@127.0.0.1:{DB_PORT}/{DRAIN_DATABASE}",
                extra=["--batch-size", str(batch), "--max-duration", str(DRAIN_MAX_DURATION)],
            )
            load_before = os.getloadavg()[0]
            result = timed(argv, self.env)
            result["load_before"] = load_before
            result["publish"] = publish
            result["argv"] = argv
            summary = last_json(result["stdout"])
            result["summary"] = summary
            problems = []
            if result["code"] != 0:
                problems.append(f"exit {result['code']}")
            for key, want in (("received", n), ("acked", n), ("deleted_rows", n)):
                if (summary or {}).get(key) != want:
                    problems.append(f"{key} {(summary or {}).get(key)} of {n}")
            users, orders = db.remaining(user_ids)
            if users or orders:
                problems.append(f"{users} users and {orders} orders left")
            result["ok"] = not problems
            result["problems"] = problems
            log(
                f"  drain  {n:>9,} msgs: {result['wall']:.1f} s, {result['rss_mib']:.1f} MiB, "
                f"{(summary or {}).get('rounds')} rounds, load {load_before:.2f} → {result['load']:.2f}"
                + ("" if result["ok"] else f"  ** {'; '.join(problems)} **")
            )
            if not result["ok"]:
                tail = "\n".join(line for _, line in result["stderr"][-15:])
                log(f"    stderr tail:\n{tail}")
            return result
        finally:
            # Nothing of the drain stays behind: the other cases use DATABASE.
            db.sql(f"DROP DATABASE IF EXISTS {DRAIN_DATABASE}")


# --- statistics and the report -------------------------------------------------


def stats(results, key=lambda r: r["wall"]):
    values = sorted(key(r) for r in results if r["ok"])
    if not values:
        return None
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "failed": sum(1 for r in results if not r["ok"]),
    }


def fmt_s(s):
    if s is None:
        return "n/a"
    return f"{s['median']:.3f} s ({s['min']:.3f}–{s['max']:.3f})"


def fmt_mib(s):
    if s is None:
        return "n/a"
    return f"{s['median']:.1f} MiB ({s['min']:.1f}–{s['max']:.1f})"


def runs(s):
    if s is None:
        return "0"
    return f"{s['n']}" + (f" (+{s['failed']} failed)" if s["failed"] else "")


def shown(args, argv):
    """A command line as the results show it: the binary and the interpreter
    by name, the benchmark's own files by their path in the repository."""
    def one(a):
        if a == args.binary:
            return "user-purge"
        if a == args.python:
            return "python"
        if a.startswith(str(HERE) + "/"):
            return "bench/" + a[len(str(HERE)) + 1:]
        return a
    return shlex.join(one(a) for a in argv)


def log(message):
    print(message, file=sys.stderr, flush=True)


def phases(result):
    """The job's own phase timings, summed over its rounds, and the gaps
    around them from the times its log lines reached us."""
    out = {}
    stamps = {}
    for r in rounds(result):
        for k in ("receive", "delete", "ack"):
            if k in r:
                out[k] = out.get(k, 0) + r[k]
                stamps[k] = r[k + "_at"]
    for at, line in result["stderr"]:
        if "purging users named by" in line:
            stamps["start_log"] = at
    # The names the report has always used for the moments.
    for k, name in (("receive", "received"), ("delete", "deleted"), ("ack", "acked")):
        if k in stamps:
            stamps[name] = stamps.pop(k)
    return out, stamps


# The job's per-round info lines. Since issue 10 a run has rounds, the
# receive line names its round and the acknowledge line no longer counts the
# hand-backs (they wait for the end of the run); the older forms are still
# read, so that a binary from before (one round, always) is measured alike.
RECEIVED = re.compile(r"received (\d+) messages in (\d+) ms(?: \(round (\d+)\))?")
DELETED = re.compile(r"deleted (\d+) rows for (\d+) users and committed in (\d+) ms")
ACKED = re.compile(r"acknowledged (\d+) (?:and handed back \d+ )?messages in (\d+) ms")


def rounds(result):
    """One dict per round, from the job's log: messages received, and the ms
    and arrival time of its receive, delete and acknowledge lines."""
    out = []
    for at, line in result["stderr"]:
        m = RECEIVED.search(line)
        if m:
            out.append({"messages": int(m.group(1)), "receive": int(m.group(2)), "receive_at": at})
            continue
        m = DELETED.search(line)
        if m and out:
            out[-1].update(rows=int(m.group(1)), delete=int(m.group(3)), delete_at=at)
            continue
        m = ACKED.search(line)
        if m and out:
            out[-1].update(acked=int(m.group(1)), ack=int(m.group(2)), ack_at=at)
    return out


def machine(bench, binary):
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    cpu = "unknown"
    family = model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and cpu == "unknown":
            cpu = line.split(":", 1)[1].strip()
        elif line.startswith("cpu family") and not family:
            family = line.split(":", 1)[1].strip()
        elif line.startswith("model") and not line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
    jars = sorted(Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib").glob("cloud-pubsub-emulator-*.jar"))
    emulator = re.sub(r"^cloud-pubsub-emulator-|-all\.jar$", "", jars[-1].name) if jars else "unknown"

    def out(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
        except OSError:
            return "unknown"

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": f"{cpu} (family {family}, model {model})",
        "kernel": platform.release(),
        "emulator": f"cloud-pubsub-emulator {emulator}",
        "mariadb": bench.db.version(),
        "buffer_pool": int(bench.db.sql("SELECT @@innodb_buffer_pool_size")[0][0]) // (1024 * 1024),
        "flush": bench.db.sql("SELECT @@innodb_flush_method")[0][0],
        "rustc": out("rustc", "--version"),
        "python": platform.python_version(),
        "commit": out("git", "rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes)" if out("git", "status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock", "build.rs", "proto") else ""),
        "binary": binary,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(ROOT / "target/release/user-purge"))
    parser.add_argument("--python", default=sys.executable, help="interpreter for the Python reference")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per case (at least 5 for the figures)")
    parser.add_argument("--empty-default-reps", type=int, default=3, help="Python runs on an empty subscription with the client's default 60 s timeout")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--out",
        default=None,
        help="where the Markdown goes; by default $BENCH_OUT or bench/results.md, "
        "with -drain before .md when the drain is the only case",
    )
    parser.add_argument("--build-facts", default=None, help="JSON written by bench/run: build times and sizes")
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated subset: compare,empty,growth,phases (the default set), "
        "drain, map, via, heavy, verify, postgres (only when asked for: they seed databases of their own)",
    )
    parser.add_argument("--drain-messages", type=int, default=1_000_000, help="the drain's backlog (at most 1,000,000)")
    parser.add_argument("--drain-batch", type=int, default=10_000, help="the drain's --batch-size")
    parser.add_argument(
        "--keep-map-database",
        action="store_true",
        help=f"leave the map case's database ({MAP_DATABASE}, about 0.5 GB) in place for the next run",
    )
    parser.add_argument(
        "--keep-via-database",
        action="store_true",
        help=f"leave the via case's database ({VIA_DATABASE}, about 1 GB) in place for the next run",
    )
    parser.add_argument(
        "--no-via-subquery",
        action="store_true",
        help="skip the via case's one timing of the single-table subquery form (it scans order_items)",
    )
    parser.add_argument("--heavy-ways", default=",".join(HEAVY_WAYS), help=f"the heavy case's ways, in order (default {','.join(HEAVY_WAYS)})")
    parser.add_argument("--heavy-reps", type=int, default=1, help="runs of each of the heavy case's ways (each reseeds 2,000,000 rows)")
    parser.add_argument("--heavy-settle", type=int, default=60, help="seconds the heavy case waits at most for InnoDB's purge after seeding")
    parser.add_argument("--pt-archiver", default="pt-archiver", help="the heavy case's pt-archiver (Debian's percona-toolkit)")
    parser.add_argument(
        "--keep-verify-database",
        action="store_true",
        help=f"leave the verify case's database ({VERIFY_DATABASE}, about 0.6 GB) in place for the next run",
    )
    parser.add_argument(
        "--keep-postgres-database",
        action="store_true",
        help=f"leave the postgres case's database ({POSTGRES_DATABASE} on PostgreSQL, about 0.2 GB) in place for the next run",
    )
    parser.add_argument(
        "--keep-heavy-database",
        action="store_true",
        help=f"leave the heavy case's database ({HEAVY_DATABASE}, about 0.3 GB) in place after the run",
    )
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else set(DEFAULT_CASES)
    if args.out is None:
        # A drain or a map on its own must not overwrite the default set's figures.
        out = Path(os.environ.get("BENCH_OUT", HERE / "results.md"))
        alone = {frozenset({"drain"}): "-drain", frozenset({"map"}): "-map", frozenset({"via"}): "-via", frozenset({"heavy"}): "-heavy",
                 frozenset({"verify"}): "-verify", frozenset({"postgres"}): "-postgres"}.get(frozenset(only), "")
        args.out = str(out.with_name(out.stem + alone + ".md"))

    bench = Bench(args)
    if only & DEFAULT_CASES:  # the drain and the map seed databases of their own
        bench.db.ensure_seeded()
    facts = machine(bench, args.binary)
    load_before = os.getloadavg()
    started = time.perf_counter()

    if not args.no_warmup and only & DEFAULT_CASES:
        log("warm-up (not counted): one run of each on 10,000 messages")
        bench.run("rust", 10_000, bench.rust_argv())
        bench.run("python", 10_000, bench.python_argv(10_000, PYTHON_PULL_TIMEOUT))

    results = {}
    if "compare" in only:
        log(f"10,000 messages, alternating, {args.reps} runs each")
        rust, python, floor = [], [], []
        for i in range(args.reps):
            floor.append(bench.floor(10_000))
            order = [("rust", rust), ("python", python)]
            if i % 2:
                order.reverse()
            for who, bucket in order:
                argv = bench.rust_argv() if who == "rust" else bench.python_argv(10_000, PYTHON_PULL_TIMEOUT)
                bucket.append(bench.run(who, 10_000, argv))
        results["compare"] = (rust, python, floor)

    if "empty" in only:
        log(f"empty subscription, {args.reps} runs each (Python with the default timeout: {args.empty_default_reps})")
        er, ep = [], []
        for i in range(args.reps):
            er.append(bench.run("rust", 0, bench.rust_argv()))
            ep.append(bench.run("python", 0, bench.python_argv(10_000, PYTHON_PULL_TIMEOUT)))
        ed = [bench.run("python", 0, bench.python_argv(10_000, "default")) for _ in range(args.empty_default_reps)]
        results["empty"] = (er, ep, ed)

    if "growth" in only:
        log(f"growth, user-purge only, {args.reps} runs each")
        growth = {}
        for label, n, maxm in [
            ("1,000 (`--max-messages 1000`)", 1_000, 1_000),
            ("1,000 (default `--max-messages`: ends on an empty Pull, which the emulator answers at once)", 1_000, None),
            ("10,000 (default `--max-messages`)", 10_000, None),
            ("100,000 (`--max-messages 100000`)", 100_000, 100_000),
        ]:
            growth[label] = (n, [bench.run("rust", n, bench.rust_argv(maxm)) for _ in range(args.reps)])
        results["growth"] = growth

    if "phases" in only:
        log("phase breakdown of one 10,000-message run")
        results["phases"] = bench.run("rust", 10_000, bench.rust_argv())

    if "drain" in only:
        log(f"drain: {args.drain_messages:,} messages in rounds of {args.drain_batch:,}, one run")
        results["drain"] = bench.drain(args.drain_messages, args.drain_batch)

    if "map" in only:
        log("map: 10,000 removals over a three-table erasure map")
        results["map"] = bench.map_case()

    if "via" in only:
        log("via: 10,000 removals over an erasure map whose entries reach their rows through other tables")
        results["via"] = bench.via_case()

    if "heavy" in only:
        log(f"heavy: one user's {HEAVY_ROWS:,} events rows, erased {args.heavy_ways.replace(',', ', ')}")
        results["heavy"] = bench.heavy_case()

    if "verify" in only:
        log("verify: user-purge verify over a 1,000,000-user erasure record and a five-entry map, against the floor")
        results["verify"] = bench.verify_case()

    if "postgres" in only:
        log("postgres: 10,000 removals on PostgreSQL, user-purge against the Python reference on psycopg")
        results["postgres"] = bench.postgres_case()

    facts["load"] = f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after (1-minute load average)"
    facts["duration"] = f"{(time.perf_counter() - started) / 60:.1f} min"
    build = json.loads(Path(args.build_facts).read_text()) if args.build_facts else {}
    text = report(args, facts, build, results)
    Path(args.out).write_text(text)
    print(text)
    log(f"wrote {args.out}")


def report(args, facts, build, results):
    L = []
    alone = {"drain": ": the drain", "map": ": a three-table erasure map", "via": ": an erasure map with `via` entries",
             "heavy": f": one user's {HEAVY_ROWS:,} rows", "verify": ": `user-purge verify` over a 1,000,000-user erasure record",
             "postgres": ": PostgreSQL"}
    L.append(f"## {os.environ.get('BENCH_TITLE', 'Benchmark results')}" + (alone.get(next(iter(results)), "") if len(results) == 1 else "") + "\n")
    if set(results) == {"heavy"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only heavy` ({args.heavy_reps} run of each way, no warm-up; "
            f"the tables seeded afresh before each). One user's {HEAVY_ROWS:,} rows of an `events` table erased: by "
            "user-purge on one USER_REMOVED event, the entry chunked and then atomic; by the one `DELETE` by hand (the "
            "floor); by pt-archiver.\n"
        )
    elif set(results) == {"postgres"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only postgres` ({args.reps} timed runs of each program, "
            "alternating, "
            + ("without warm-up runs" if args.no_warmup else "after one untimed warm-up run of each")
            + "; median, with min–max in parentheses; whole process, wall time measured around it, peak RSS from "
            "`/usr/bin/time -v`). The default compare case, on PostgreSQL: each run gets a fresh subscription and a "
            f"fresh backlog of 10,000 USER_REMOVED events for distinct random users of a {USERS:,}-row `users` table "
            f"({ORDERS_PER_USER} `orders` rows each, `REFERENCES users (id) ON DELETE CASCADE`, `orders.user_id` "
            "indexed), in a database of its own; the run is checked and the deleted rows are put back between runs. "
            "user-purge runs with `--database-url postgres://...`, the Python reference (bench/reference.py) with "
            "the same URL through psycopg.\n"
        )
    elif set(results) == {"verify"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only verify` ({args.reps} timed runs of `user-purge verify` and "
            f"{args.reps} of the floor, alternating, "
            + ("without warm-up runs" if args.no_warmup else "after one untimed warm-up run of each")
            + "; median, with min–max in parentheses). Neither writes anything, so every run reads the same database.\n"
        )
    elif set(results) == {"via"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only via` ({args.reps} timed runs of user-purge and "
            f"{args.reps} of the floor, alternating, "
            + ("without warm-up runs" if args.no_warmup else "after one untimed warm-up run of each")
            + "; median, with min–max in parentheses). Each run gets a fresh draw of 10,000 distinct random users (user-purge: a fresh "
            "subscription and backlog of 10,000 USER_REMOVED events for them); the run is checked and its rows are "
            "put back as seeded before the next.\n"
        )
    elif set(results) == {"map"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only map` ({args.reps} timed runs of each program, "
            "alternating, after one untimed warm-up run of each; median, with min–max in parentheses; whole process, "
            "wall time measured around it, peak RSS from `/usr/bin/time -v`). Each run gets a fresh subscription and "
            "a fresh backlog of 10,000 USER_REMOVED events for distinct random users; the run is checked and its rows "
            "are put back as they were before the next.\n"
        )
    elif set(results) == {"drain"}:
        L.append(
            f"Measured {facts['date']} with `bench/run --only drain`: one timed run (whole process, wall time "
            "measured around it, peak RSS from `/usr/bin/time -v`), no warm-up, on a database of its own seeded "
            f"afresh with a {USERS:,}-row `users` table ({ORDERS_PER_USER} `orders` rows each, `ON DELETE CASCADE`) "
            "and dropped afterwards.\n"
        )
    else:
        L.append(
            f"Measured {facts['date']} with `bench/run` ({args.reps} timed runs per case, after one untimed warm-up "
            "run of each program; median, with min–max in parentheses; whole process, wall time measured around it, "
            "peak RSS from `/usr/bin/time -v`). Each run gets a fresh subscription and a fresh backlog of USER_REMOVED "
            f"events for distinct random users of a {USERS:,}-row `users` table ({ORDERS_PER_USER} `orders` rows each, "
            "`ON DELETE CASCADE`); the deleted rows are put back between runs.\n"
        )
    if set(results) == {"postgres"}:
        pg = results["postgres"]
        database = (
            f"PostgreSQL {pg['version']} (local: the server scripts/test uses (ensure_postgres), at port "
            f"{POSTGRES_PORT}, shared with whatever else runs on the machine; `shared_buffers` {pg['shared_buffers']}, "
            f"`synchronous_commit` {pg['synchronous_commit']})"
        )
    else:
        database = (
            f"MariaDB {facts['mariadb']} (local: {os.environ.get('BENCH_DB_NOTE', 'at port ' + str(DB_PORT))}; "
            f"{facts['buffer_pool']} MiB buffer pool, `innodb_flush_method` {facts['flush']})"
        )
    L.append(
        f"Machine: {facts['nproc']} cores, {facts['memory']}, {facts['cpu']}, Linux {facts['kernel']}; "
        f"{facts['emulator']} (local), {database}; "
        f"{facts['rustc']}; Python {facts['python']}; commit {facts['commit']}. Load: {facts['load']}. "
        f"The benchmark took {facts['duration']}.\n"
    )
    if "compare" in results:
        rust, python, floor = results["compare"]
        rs, ps = stats(rust), stats(python)
        rm, pm = stats(rust, lambda r: r["rss_mib"]), stats(python, lambda r: r["rss_mib"])
        pt = stats(python, lambda r: r["summary"]["task_ms"] / 1000)
        L.append("### 10,000 messages, user-purge against the Python reference (alternating)\n")
        L.append("| program | runs | wall time | peak RSS |")
        L.append("|---|---|---|---|")
        L.append(f"| user-purge (release) | {runs(rs)} | {fmt_s(rs)} | {fmt_mib(rm)} |")
        L.append(f"| Python reference | {runs(ps)} | {fmt_s(ps)} | {fmt_mib(pm)} |")
        L.append(f"| Python reference, the task alone (no interpreter start or imports) | {runs(pt)} | {fmt_s(pt)} | |")
        L.append(f"| the job's DELETE and COMMIT alone (READ COMMITTED, as the job runs it), on an open connection: the database's share | {runs(stats(floor))} | {fmt_s(stats(floor))} | |")
        if rs and ps:
            L.append(
                f"\n**Ratio of medians (Python / user-purge): {ps['median'] / rs['median']:.1f}×** whole process"
                + (f"; {pt['median'] / rs['median']:.1f}× against the Python task alone." if pt else ".")
            )
        L.extend(time_split(rust, python))
        L.append(
            "\nBoth send one `DELETE ... WHERE id IN (...)` with the same ids in ascending order; user-purge "
            "runs it under READ COMMITTED, the Python reference under PyMySQL's default REPEATABLE READ, as the "
            "original did; that costs it more for the same statement (next-key locks on every id it visits)."
        )
        L.append(
            f"\nThe Python reference's Pulls carry `timeout={PYTHON_PULL_TIMEOUT}` here (user-purge's own "
            "`--pull-timeout-ms` default), so that an empty Pull would cost both programs the same; with exactly "
            "10,000 messages both stop at 10,000 held and neither waits on an empty Pull.\n"
        )
    if "empty" in results:
        er, ep, ed = results["empty"]
        L.append("### Empty subscription: start to exit\n")
        L.append(
            "The emulator answers a Pull whose deadline is under about 1 s with an empty response at once, and "
            "otherwise about 1 s before the deadline: user-purge's 0.5 s Pull deadline costs it nothing here "
            "(the real service may hold the Pull open up to its deadline), while the client's default 60 s "
            "deadline blocks the Python reference for a minute.\n"
        )
        L.append("| program | runs | wall time | peak RSS |")
        L.append("|---|---|---|---|")
        for name, rs in [
            ("user-purge (release), `--pull-timeout-ms 500` (default)", er),
            ("Python reference, the client's default Pull timeout (as the original)", ed),
            (f"Python reference, `timeout={PYTHON_PULL_TIMEOUT}` (as in the 10,000-message runs)", ep),
        ]:
            L.append(f"| {name} | {runs(stats(rs))} | {fmt_s(stats(rs))} | {fmt_mib(stats(rs, lambda r: r['rss_mib']))} |")
        L.append("")
    if "growth" in results:
        L.append("### Growth with the backlog (user-purge only)\n")
        L.append("| messages | runs | wall time | per 1,000 messages | peak RSS |")
        L.append("|---|---|---|---|---|")
        for label, (n, rs) in results["growth"].items():
            s = stats(rs)
            per = f"{s['median'] / n * 1000 * 1000:.1f} ms" if s else "n/a"
            L.append(f"| {label} | {runs(s)} | {fmt_s(s)} | {per} | {fmt_mib(stats(rs, lambda r: r['rss_mib']))} |")
        pts = [(n, stats(rs)) for label, (n, rs) in results["growth"].items() if "empty Pull" not in label]
        pts = [(n, s["median"]) for n, s in pts if s]
        if len(pts) >= 2:
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            mx, my = statistics.mean(xs), statistics.mean(ys)
            slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x in xs)
            intercept = my - slope * mx
            ss_res = sum((y - intercept - slope * x) ** 2 for x, y in pts)
            ss_tot = sum((y - my) ** 2 for y in ys) or 1.0
            L.append(
                f"\nLeast-squares line through the medians with `--max-messages` equal to the backlog: "
                f"{intercept:.3f} s + {slope * 1000 * 1000:.2f} ms per 1,000 messages (R² = {1 - ss_res / ss_tot:.4f})."
            )
        L.append("")
    if "phases" in results:
        r = results["phases"]
        ph, at = phases(r)
        L.append("### One 10,000-message run, phase by phase\n")
        L.append(
            "Receive, delete and acknowledge are the job's own log timings (`received … in X ms` and so on) and "
            "the MariaDB connect follows from its summary's `elapsed_ms`; process start and exit are taken from "
            "the moments its first and last log lines reached the benchmark (a few ms of jitter), and the "
            "Pub/Sub connect is what remains of the wall time.\n"
        )
        L.extend(phase_rows(r, ph, at, "connect to MariaDB"))
        L.append(f"\nPeak RSS of that run: {r['rss_mib']:.1f} MiB.\n")
    if "drain" in results:
        L.extend(drain_report(args, results["drain"]))
    if "map" in results:
        L.extend(map_report(args, facts, results["map"]))
    if "via" in results:
        L.extend(via_report(args, facts, results["via"]))
    if "heavy" in results:
        L.extend(heavy_report(args, facts, results["heavy"]))
    if "verify" in results:
        L.extend(verify_report(args, facts, results["verify"]))
    if "postgres" in results:
        L.extend(postgres_report(args, facts, results["postgres"]))
    if build:
        L.append("### The binary\n")
        L.append("| | |")
        L.append("|---|---|")
        for k, v in build.items():
            L.append(f"| {k} | {v} |")
        L.append("")
    return "\n".join(L) + "\n"


def time_split(rust, python):
    """Where the time of the 10,000-message runs goes, program by program:
    user-purge's own phase lines, the Python reference's own timings."""
    L = []
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    rp = [phases(r)[0] for r in rust if r["ok"]]
    rp = [p for p in rp if len(p) == 3]
    pp = [r["summary"] for r in python if r["ok"]]
    if rp and pp:
        L.append("\nWhere the time goes (medians over the same runs, ms):\n")
        L.append("| phase | user-purge | Python reference |")
        L.append("|---|---|---|")
        r_rest = med([r["wall"] * 1000 - sum(phases(r)[0].values()) for r in rust if r["ok"] and len(phases(r)[0]) == 3])
        p_rest = med([r["wall"] * 1000 - r["summary"]["task_ms"] - r["summary"]["import_ms"] for r in python if r["ok"]])
        L.append(f"| interpreter start, imports, exit | – | {med([p['import_ms'] for p in pp]) + p_rest:.0f} (imports {med([p['import_ms'] for p in pp]):.0f}) |")
        L.append(f"| pull (and decode, for user-purge) | {med([p['receive'] for p in rp]):.0f} | {med([p['pull_ms'] for p in pp]):.0f} in {med([p['pulls'] for p in pp]):.0f} sequential Pulls |")
        L.append(f"| decode | (in pull) | {med([p['decode_ms'] for p in pp]):.0f} |")
        L.append(f"| delete and commit | {med([p['delete'] for p in rp]):.0f} | {med([p['delete_ms'] for p in pp]):.0f} (connect included) |")
        L.append(f"| acknowledge | {med([p['ack'] for p in rp]):.0f} | {med([p['ack_ms'] for p in pp]):.0f} |")
        L.append(f"| everything else (process start, connects, exit) | {r_rest:.0f} | {med([p['setup_ms'] for p in pp]):.0f} (client setup) |")
    return L


def phase_rows(r, ph, at, connect):
    """The phase-by-phase table of one debug run `r` (its `phases`), the
    database connect named `connect`."""
    L = ["| phase | ms |", "|---|---|"]
    elapsed = (r["summary"] or {}).get("elapsed_ms")
    startup = at.get("start_log")
    tail = r["wall"] - at["acked"] if "acked" in at else None
    if startup is not None:
        L.append(f"| process start to its first log line (exec, runtime, configuration) | {startup * 1000:.0f} |")
    if None not in (startup, tail, elapsed):
        pubsub = r["wall"] * 1000 - elapsed - startup * 1000 - tail * 1000
        L.append(f"| connect to Pub/Sub (the rest of the wall time) | {pubsub:.0f} |")
    if elapsed is not None and len(ph) == 3:
        L.append(f"| {connect} (the pass's `elapsed_ms` less its three phases) | {elapsed - sum(ph.values())} |")
    for k, name in [
        ("receive", "receive: Pulls, 4 in flight, 100 messages each, and decoding"),
        ("delete", "delete 10,000 users (20,000 orders by cascade) and commit"),
        ("ack", "acknowledge: 10 requests of 1,000 ack ids, all at once"),
    ]:
        if k in ph:
            L.append(f"| {name} | {ph[k]} |")
    if tail is not None:
        L.append(f"| after the last phase: summary line, runtime shutdown, exit | {tail * 1000:.0f} |")
    L.append(f"| **whole process** | **{r['wall'] * 1000:.0f}** |")
    return L


def postgres_report(args, facts, pg):
    L = []
    rust, python, floor = pg["rust"], pg["python"], pg["floor"]
    rs, ps, fs = stats(rust), stats(python), stats(floor)
    rm, pm = stats(rust, lambda r: r["rss_mib"]), stats(python, lambda r: r["rss_mib"])
    pt = stats(python, lambda r: r["summary"]["task_ms"] / 1000)

    def counted(results, key):
        values = sorted({(r["summary"] or {}).get(key) for r in results if r["ok"]})
        return ", ".join(f"{v:,}" for v in values) if values else "n/a"

    L.append("### 10,000 messages on PostgreSQL, user-purge against the Python reference (alternating)\n")
    L.append("| program | runs | wall time | peak RSS | rows deleted | messages acked |")
    L.append("|---|---|---|---|---|---|")
    L.append(f"| user-purge (release) | {runs(rs)} | {fmt_s(rs)} | {fmt_mib(rm)} | {counted(rust, 'deleted_rows')} | {counted(rust, 'acked')} |")
    L.append(f"| Python reference (psycopg) | {runs(ps)} | {fmt_s(ps)} | {fmt_mib(pm)} | {counted(python, 'deleted_rows')} | {counted(python, 'acked')} |")
    L.append(f"| Python reference, the task alone (no interpreter start or imports) | {runs(pt)} | {fmt_s(pt)} | | | |")
    L.append(
        f"| the job's DELETE and COMMIT alone, on an open connection: the database's share | {runs(fs)} | {fmt_s(fs)} | | "
        + ", ".join(sorted({f"{r['rows']:,}" for r in floor if r["ok"]}) or ["n/a"]) + " | |"
    )
    if rs and ps:
        ratio = ps["median"] / rs["median"]
        L.append(
            f"\n**Ratio of medians (Python / user-purge): {ratio:.1f}×** whole process"
            + (f"; {pt['median'] / rs['median']:.1f}× against the Python task alone" if pt else "")
            + f". The issue's target is at least 3×: {'met' if ratio >= 3 else '**not met**'}."
        )
    L.extend(time_split(rust, python))
    L.append("\nEvery run, in the order run (the floor before each pair; rows deleted are the `users` rows, "
             "the cascade's orders are not counted by either program; each run checked afterwards: none of its "
             f"users and none of their orders left, and {USERS - 10_000:,} users and "
             f"{(USERS - 10_000) * ORDERS_PER_USER:,} orders in all, so nobody else's rows went):\n")
    L.append("| # | program | wall time | peak RSS | received | rows deleted | acked | check | load |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    n = lambda v: f"{v:,}" if isinstance(v, int) else "n/a"  # noqa: E731
    for i, (who, r) in enumerate(pg["order"], 1):
        check = "ok" if r["ok"] else "**failed**"
        if who == "floor":
            L.append(f"| {i} | the floor (DELETE and COMMIT alone) | {r['wall']:.3f} s | | | {n(r['rows'])} | | {check} | {r['load']:.2f} |")
            continue
        sm = r["summary"] or {}
        name = "user-purge" if who == "rust" else "Python reference"
        L.append(
            f"| {i} | {name} | {r['wall']:.3f} s | {r['rss_mib']:.1f} MiB | {n(sm.get('received'))} | "
            f"{n(sm.get('deleted_rows'))} | {n(sm.get('acked'))} | {check} | {r['load']:.2f} |"
        )
    rust_argv, python_argv = pg["argv"]
    L.append("\nThe commands (the database URL is `" + PostgresDatabase.url() + "`):\n")
    L.append(f"    {shown(args, rust_argv)}")
    L.append(f"    {shown(args, python_argv)}")
    d = pg["debug"]
    ph, at = phases(d)
    L.append("\n### One 10,000-message run on PostgreSQL, phase by phase\n")
    L.append(
        "A user-purge run with `RUST_LOG=user_purge=debug`, after the timed ones (so its debug lines cost the "
        "timed runs nothing): the job's own phase timings and its summary's `elapsed_ms`, as in results.md.\n"
    )
    L.extend(phase_rows(d, ph, at, "connect to PostgreSQL and read its schema"))
    pulls = [(when, line) for when, line in d["stderr"] if "a Pull returned" in line]
    shown_lines = [(when, line) for when, line in d["stderr"] if "a Pull returned" not in line]
    L.append(
        f"\nPeak RSS of that run: {d['rss_mib']:.1f} MiB; {'checked ok' if d['ok'] else '**its check failed**'}. "
        f"Its log lines at their arrival (s since start), but for its {len(pulls)} `a Pull returned N messages` lines"
        + (f" (from {pulls[0][0]:.3f} to {pulls[-1][0]:.3f} s)" if pulls else "")
        + ":\n"
    )
    L.append("```")
    for when, line in shown_lines[:60]:
        L.append(f"{when:7.3f}  {line[:300]}")
    if len(shown_lines) > 60:
        L.append(f"... and {len(shown_lines) - 60} more lines")
    L.append("```\n")
    L.append(
        f"The database: `users` {pg['sizes'].get('users', '?')}, `orders` {pg['sizes'].get('orders', '?')} "
        "(with their indexes)"
        + (f", seeded in {pg['seeded_in']:.1f} s with generate_series" if pg["seeded_in"] else ", kept from an earlier run")
        + f"; {pg['after'][0]:,} users and {pg['after'][1]:,} orders after the last restore. Between runs "
        "`VACUUM users, orders` (untimed) takes up the last run's dead rows, as the MariaDB cases wait for "
        "InnoDB's purge.\n"
    )
    return L


def via_statements():
    """user-purge's statements for bench/erasure-map-via.toml, written as
    src/store/sql.rs's entry_statement writes them (for one hop), the id list
    shown as (...)."""
    q = lambda name: f"`{name}`"  # noqa: E731
    return [
        ("order_items", "DELETE `t0` FROM `order_items` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` "
         "WHERE `h1`.`user_id` IN (...)"),
        ("shipping", "UPDATE `shipping` AS `t0` JOIN `orders` AS `h1` ON `t0`.`order_id` = `h1`.`id` "
         "SET `t0`.`address` = NULL WHERE `h1`.`user_id` IN (...)"),
        ("newsletter", "DELETE `t0` FROM `newsletter` AS `t0` JOIN `users` AS `h1` ON `t0`.`email` = `h1`.`email` "
         "WHERE `h1`.`id` IN (...)"),
        ("orders", f"DELETE FROM {q('orders')} WHERE {q('user_id')} IN (...)"),
        ("users", f"DELETE FROM {q('users')} WHERE {q('id')} IN (...)"),
    ]


def verify_statements(recorded=None):
    """verify's statements for bench/erasure-map-via.toml, one per entry, as
    src/store/sql.rs's findings_select writes them (for one hop), the page's
    ids shown as (...); with ``recorded`` (a page's (after, through), as
    literals), the page read from the record itself, as 177ebb4 wrote them
    (reverted in the next commit: see results-verify.md)."""
    if recorded is not None:
        after, through = recorded
        users = f"SELECT `user_id` FROM `{VERIFY_RECORD}` WHERE `user_id` <= {through}" + (
            f" AND `user_id` > {after}" if after is not None else "")
        return [(t, sql.replace("IN (...)", f"IN ({users})")) for t, sql in verify_statements()]
    return [
        ("order_items", "SELECT `h1`.`user_id`, COUNT(*) FROM `order_items` AS `t0` JOIN `orders` AS `h1` ON "
         "`t0`.`order_id` = `h1`.`id` WHERE `h1`.`user_id` IN (...) GROUP BY `h1`.`user_id`"),
        ("shipping", "SELECT `h1`.`user_id`, COUNT(*) FROM `shipping` AS `t0` JOIN `orders` AS `h1` ON "
         "`t0`.`order_id` = `h1`.`id` WHERE `h1`.`user_id` IN (...) AND NOT (`t0`.`address` <=> NULL) GROUP BY `h1`.`user_id`"),
        ("newsletter", "SELECT `h1`.`id`, COUNT(*) FROM `newsletter` AS `t0` JOIN `users` AS `h1` ON "
         "`t0`.`email` = `h1`.`email` WHERE `h1`.`id` IN (...) GROUP BY `h1`.`id`"),
        ("orders", "SELECT `user_id`, COUNT(*) FROM `orders` WHERE `user_id` IN (...) GROUP BY `user_id`"),
        ("users", "SELECT `id`, COUNT(*) FROM `users` WHERE `id` IN (...) GROUP BY `id`"),
    ]


def via_report(args, facts, v):
    L = []
    rust, floor = v["rust"], v["floor"]
    sizes = v["sizes"]
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    erase_ms = lambda r: phases(r)[0].get("delete")  # noqa: E731
    L.append("### 10,000 removals over an erasure map with `via` entries: user-purge against the floor (alternating)\n")
    L.append(f"Load (`uptime`) before: `{v['uptime'][0]}`; after: `{v['uptime'][1]}`.\n")
    L.append(
        f"A database of its own (`{VIA_DATABASE}`"
        + (f", seeded in {v['seeded_in']:.0f} s with one `INSERT ... SELECT` from MariaDB's sequence engine per table"
           if v["seeded_in"] else ", kept from an earlier run")
        + f", dropped afterwards unless `--keep-via-database`), no foreign keys, utf8mb4_general_ci throughout, "
        f"on a {facts['buffer_pool']} MiB buffer pool:\n"
    )
    want = v["expected"]
    L.append("| table | rows | shape | data and indexes |")
    L.append("|---|---|---|---|")
    for table, shape in [
        ("users", "`id` primary key, `email` unique"),
        ("orders", f"{VIA_ORDERS_PER_USER} per user, `user_id` indexed"),
        ("order_items", "5 per user (3 on its first order, 2 on its second), `order_id` indexed"),
        ("shipping", "1 per order, `order_id` indexed, `address` nullable (redacted, the row kept)"),
        ("newsletter", "every other user's email, `email` primary key"),
    ]:
        L.append(f"| `{table}` | {want[table]:,} | {shape} | {sizes.get(table, 0):.0f} MB |")
    L.append(f"| all | {sum(want[t] for t in ViaDatabase.TABLES):,} | | {sum(sizes.values()):.0f} MB |")
    L.append(
        "\nThe map, [`bench/erasure-map-via.toml`](erasure-map-via.toml); user-purge sends these statements "
        "(as `src/store/sql.rs` writes them), in this order, each over the round's 10,000 ids (ascending) in one "
        "`IN` list, in one transaction under READ COMMITTED, then acknowledges:\n"
    )
    rows = floor[0]["rows"] if floor and floor[0].get("rows") else {}
    L.append("```sql")
    L.append("START TRANSACTION;")
    L.append("SAVEPOINT ...;")
    for table, sql in via_statements():
        L.append(f"{sql};  -- {table}: about {rows.get(table, 0):,} rows")
    L.append("COMMIT;\n```\n")
    L.append(
        "The floor: the same five statements written by hand, in one transaction on a PyMySQL connection opened "
        "beforehand (READ COMMITTED, as the job's session), the statement texts built beforehand, timed from "
        "`BEGIN` to the end of `COMMIT`:\n"
    )
    L.append("```sql")
    L.append("BEGIN;")
    for _, sql in Bench.VIA_FLOOR:
        L.append(sql.format(ids="...") + ";")
    L.append("COMMIT;\n```\n")
    L.append("```\n" + shown(args, v["argv"]) + "\n```\n")

    L.append("Run by run (user-purge's erase transaction from its own log line, `deleted N rows for M users and "
             "committed in X ms`: `START TRANSACTION` to `COMMIT`; each pair ran back to back, in alternating order):\n")
    L.append("| pair | user-purge: erase transaction | floor: BEGIN to COMMIT | ratio | user-purge: whole process | peak RSS | load (1-minute) after user-purge / floor |")
    L.append("|---|---|---|---|---|---|---|")
    ratios = []
    for i, (r, f) in enumerate(zip(rust, floor), 1):
        e = erase_ms(r)
        ok = r["ok"] and f["ok"] and e is not None
        ratio = e / (f["wall"] * 1000) if ok else None
        if ratio is not None:
            ratios.append(ratio)
        L.append(
            f"| {i} | {e if e is not None else 'n/a'} ms{'' if r['ok'] else ' (failed a check)'} | "
            f"{f['wall'] * 1000:.0f} ms{'' if f['ok'] else ' (failed a check)'} | "
            f"{f'{ratio:.2f}×' if ratio is not None else 'n/a'} | {r['wall']:.3f} s | {r['rss_mib']:.1f} MiB | "
            f"{r['load']:.2f} / {f['load']:.2f} |"
        )
    es = stats([r for r in rust if erase_ms(r) is not None], lambda r: erase_ms(r) / 1000)
    fs = stats(floor)
    ws, ms = stats(rust), stats(rust, lambda r: r["rss_mib"])
    L.append("\n| | runs | median (min–max) |")
    L.append("|---|---|---|")
    L.append(f"| user-purge: the erase transaction (its log line) | {runs(es)} | {fmt_s(es)} |")
    L.append(f"| the floor: the five statements by hand, BEGIN to COMMIT, on an open connection | {runs(fs)} | {fmt_s(fs)} |")
    L.append(f"| user-purge: whole process (wall time around it) | {runs(ws)} | {fmt_s(ws)} |")
    L.append(f"| user-purge: peak RSS | {runs(ms)} | {fmt_mib(ms)} |")
    if es and fs:
        ratio = es["median"] / fs["median"]
        L.append(
            f"\n**user-purge's erase transaction against the floor, ratio of medians: {ratio:.2f}×** "
            f"(target at most 1.2×: {'met' if ratio <= 1.2 else '**missed**'}); median of the paired ratios "
            f"{med(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})."
        )
    fp = [f["statement_ms"] for f in floor if f["ok"]]
    if fp:
        L.append("\nThe floor, statement by statement (ms, median with min–max, over its timed runs):\n")
        L.append("| statement | rows | ms |")
        L.append("|---|---|---|")
        for key in [t for t, _ in Bench.VIA_FLOOR] + ["commit"]:
            xs = sorted(f[key] for f in fp)
            n_rows = "" if key == "commit" else f"{med([f['rows'][key] for f in floor if f['ok']]):,.0f}"
            L.append(f"| {key if key != 'commit' else 'COMMIT'} | {n_rows} | {med(xs):.0f} ({xs[0]:.0f}–{xs[-1]:.0f}) |")
    rp = [phases(r)[0] for r in rust if r["ok"]]
    rp = [p for p in rp if len(p) == 3]
    if rp:
        rest = med([r["wall"] * 1000 - sum(phases(r)[0].values()) for r in rust if r["ok"] and len(phases(r)[0]) == 3])
        L.append("\nuser-purge's whole process, phase by phase (medians, ms, from its log lines):\n")
        L.append("| phase | ms |")
        L.append("|---|---|")
        L.append(f"| pull and decode | {med([p['receive'] for p in rp]):.0f} |")
        L.append(f"| erase transaction (five statements and commit) | {med([p['delete'] for p in rp]):.0f} |")
        L.append(f"| acknowledge | {med([p['ack'] for p in rp]):.0f} |")
        L.append(f"| everything else (process start, connects and the schema check, exit) | {rest:.0f} |")
    single = v.get("single")
    if single:
        j, s = single["join"], single["subquery"]
        L.append("\n### The order_items statement alone: multi-table JOIN against the single-table subquery form (once, for information)\n")
        L.append(
            "Each on a fresh draw of 10,000 users, alone in a transaction that was then rolled back (READ COMMITTED, "
            f"`max_statement_time` {VIA_SUBQUERY_LIMIT} s); rows the server read are the session's `Handler_read_%` "
            "counters across the statement.\n"
        )
        L.append("| form | time | rows deleted | Handler_read_key | Handler_read_next | Handler_read_rnd_next | load (1-minute) |")
        L.append("|---|---|---|---|---|---|---|")
        for name, x in (("multi-table `DELETE oi FROM order_items AS oi JOIN orders AS o ...`", j),
                        ("single-table `DELETE FROM order_items WHERE order_id IN (SELECT id FROM orders WHERE user_id IN (...))`", s)):
            h = x["handler"]
            L.append(
                f"| {name} | {x['seconds']:.3f} s{' (' + x['error'] + ')' if x['error'] else ''} | "
                f"{x['rows'] if x['rows'] is not None else 'n/a'} | {h.get('Handler_read_key', 0):,} | "
                f"{h.get('Handler_read_next', 0):,} | {h.get('Handler_read_rnd_next', 0):,} | {x['load']:.2f} |"
            )
        if not s["error"] and j["seconds"]:
            L.append(f"\n**The single-table subquery form took {s['seconds'] / j['seconds']:.0f}× the multi-table form** "
                     f"({s['seconds']:.2f} s against {j['seconds']:.3f} s).")
        for name, x in (("multi-table", j), ("single-table subquery", s)):
            L.append(f"\nEXPLAIN, {name} (the 10,000-id list as in the timed statement):\n")
            cols = ["id", "select_type", "table", "type", "possible_keys", "key", "key_len", "ref", "rows", "Extra"]
            L.append("| " + " | ".join(cols) + " |")
            L.append("|" + "---|" * len(cols))
            for row in x["explain"]:
                L.append("| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    failed = [r for r in rust + floor if not r["ok"]]
    after = v["after"]
    L.append(
        "\nEvery run was checked: user-purge's exit 0, 10,000 received and acknowledged, its summary's rows per "
        "table (`tables`: order_items 50,000, shipping 20,000, newsletter as many as the odd users drawn, orders "
        "20,000, users 10,000), and for both: the users, their orders, their order items and their newsletter rows "
        "gone, their 20,000 shipping rows kept with `address` NULL"
        + (f" — **{len(failed)} runs failed a check and are left out of the figures**." if failed else "; every run passed.")
        + " Then every row was put back and every address restored as seeded; after the last: "
        + ", ".join(f"{k} {n:,}" for k, n in after.items())
        + (" (as seeded)." if after == v["expected"] else f" (**not as seeded: {v['expected']}**).")
    )
    L.append("")
    return L


def verify_proposed(after, through):
    """The page's statements proposed in results-verify.md: a via entry joins
    the record first, then its hops in order, the target last; an entry
    without hops keeps 177ebb4's subquery on the record (which the server
    joins first for it)."""
    page = f"`r`.`user_id` <= {through} AND `r`.`user_id` > {after}"
    joined = (
        f"FROM `{VERIFY_RECORD}` AS `r` JOIN `orders` AS `h1` ON `h1`.`user_id` = `r`.`user_id` "
        "JOIN `{target}` AS `t0` ON `t0`.`order_id` = `h1`.`id`"
    )
    recorded = dict(verify_statements((after, through)))
    return [
        ("order_items", f"SELECT `h1`.`user_id`, COUNT(*) {joined.format(target='order_items')} WHERE {page} GROUP BY `h1`.`user_id`"),
        ("shipping", f"SELECT `h1`.`user_id`, COUNT(*) {joined.format(target='shipping')} WHERE {page} "
         "AND NOT (`t0`.`address` <=> NULL) GROUP BY `h1`.`user_id`"),
        ("newsletter", f"SELECT `h1`.`id`, COUNT(*) FROM `{VERIFY_RECORD}` AS `r` JOIN `users` AS `h1` ON `h1`.`id` = `r`.`user_id` "
         f"JOIN `newsletter` AS `t0` ON `t0`.`email` = `h1`.`email` WHERE {page} GROUP BY `h1`.`id`"),
        ("orders", recorded["orders"]),
        ("users", recorded["users"]),
    ]


def verify_report(args, facts, v):
    L = []
    rust, floor, db = v["rust"], v["floor"], v["db"]
    sizes, counts, want = v["sizes"], v["counts"], db.expected_counts()
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    expected = db.expected()
    n_findings = sum(len(u) for u in expected.values())
    L.append(f"### user-purge verify over a {db.record_users:,}-user erasure record: against the floor (alternating)\n")
    L.append(f"Load (`uptime`) before: `{v['uptime'][0]}`; after: `{v['uptime'][1]}`.\n")
    L.append(
        f"A database of its own (`{VERIFY_DATABASE}`"
        + (f", seeded in {db.seeded_in:.0f} s with one `INSERT ... SELECT` from MariaDB's sequence engine per table"
           if db.seeded_in else ", kept from an earlier run")
        + f", dropped afterwards unless `--keep-verify-database`), the via case's tables and shapes over user ids 1 "
        f"to {VERIFY_IDS:,}: the ids divisible by {VERIFY_LIVE_EVERY} are live users with all their rows, every other "
        f"id is in the erasure record; no foreign keys, utf8mb4_general_ci throughout, on a {facts['buffer_pool']} MiB "
        "buffer pool:\n"
    )
    L.append("| table | rows | shape | data and indexes |")
    L.append("|---|---|---|---|")
    for table, shape in [
        ("users", "`id` primary key, `email` unique"),
        ("orders", f"{VIA_ORDERS_PER_USER} per user (ids 2u-1, 2u), `user_id` indexed"),
        ("order_items", "5 per user (3 on its first order, 2 on its second), `order_id` indexed"),
        ("shipping", "1 per order, `order_id` indexed, `address` nullable"),
        ("newsletter", "the odd users' emails, `email` primary key"),
        (VERIFY_RECORD, "`user_id BIGINT UNSIGNED` primary key, `erased_at DATETIME(3)`, `message_id VARCHAR(128)`, as docs/operations.md creates it"),
    ]:
        L.append(f"| `{table}` | {counts.get(table, 0):,} | {shape} | {sizes.get(table, 0):.0f} MB |")
    L.append(f"| all | {sum(counts.get(t, 0) for t in VerifyDatabase.TABLES):,} | | {sum(sizes.values()):.0f} MB |")
    odd = [u for u in db.reappeared if u % 2]
    L.append(
        f"\nOf the {db.record_users:,} recorded users, {db.record_users - len(db.reappeared) - len(db.orders_back) - len(db.newsletter_only):,} "
        f"have no rows at all; three small sets, drawn at random (seed {args.seed}), have rows back, as a restore or a "
        "stale writer would leave them:\n"
    )
    L.append(f"- {len(db.reappeared)} users with every row back (users, orders, order items, shipping with its address, "
             f"and a newsletter row for the {len(odd)} odd ones): {len(db.reappeared)} findings in each of order_items, "
             f"shipping, orders and users, {len(odd)} in newsletter;")
    L.append(f"- {len(db.orders_back)} users with only their orders back and their shipping rows redacted (address NULL): "
             f"{len(db.orders_back)} findings in orders, none in shipping;")
    L.append(f"- {len(db.newsletter_only)} odd users with only their newsletter row back: no finding, by design of the map: "
             "the newsletter entry reaches its rows through `users.email`, and their users rows are gone (the floor's "
             "join cannot see them either).")
    L.append(
        f"\nSo exactly **{n_findings} findings** ({', '.join(f'{t} {len(u)}' for t, u in expected.items())}), "
        f"{sum(sum(u.values()) for u in expected.values())} rows; counted as seeded: "
        + ", ".join(f"{k} {n:,}" for k, n in counts.items())
        + (" (as intended)." if counts == want else f" (**not as intended: {want}**).")
    )
    L.append(
        f"\nThe map, [`bench/erasure-map-via.toml`](erasure-map-via.toml) (the via case's). verify reads the record "
        f"{VERIFY_PAGE:,} users at a time and, for each page, sends one query per entry (as `src/store/sql.rs`'s "
        "`record_page` and `findings_select` write them), the page's ids in one `IN` list:\n"
    )
    L.append("```sql")
    L.append(f"SELECT `user_id` FROM `{VERIFY_RECORD}` WHERE `user_id` > ... ORDER BY `user_id` LIMIT {VERIFY_PAGE};")
    for table, sql in verify_statements():
        L.append(f"{sql};")
    L.append("```\n")
    L.append(
        "The floor: the same five checks written by hand, each joining the whole record and grouping by user, on a "
        "PyMySQL connection opened beforehand (READ COMMITTED, autocommit), every row read, timed from the first "
        "query to the last row of the last:\n"
    )
    L.append("```sql")
    for _, sql in Bench.VERIFY_FLOOR:
        L.append(sql + ";")
    L.append("```\n")
    L.append("```\n" + shown(args, v["argv"]) + "\n```\n")
    L.append("Run by run (verify: the whole process, wall time around it, peak RSS from `/usr/bin/time -v`; each pair "
             "ran back to back, in alternating order):\n")
    L.append("| pair | verify: whole process | floor: five joins | ratio | verify: peak RSS | load (1-minute) before → after, verify / floor |")
    L.append("|---|---|---|---|---|---|")
    ratios = []
    for i, (r, f) in enumerate(zip(rust, floor), 1):
        ok = r["ok"] and f["ok"]
        ratio = r["wall"] / f["wall"] if ok else None
        if ratio is not None:
            ratios.append(ratio)
        L.append(
            f"| {i} | {r['wall']:.3f} s{'' if r['ok'] else ' (failed a check)'} | "
            f"{f['wall']:.3f} s{'' if f['ok'] else ' (failed a check)'} | "
            f"{f'{ratio:.2f}×' if ratio is not None else 'n/a'} | {r['rss_mib']:.1f} MiB | "
            f"{r['load_before']:.2f} → {r['load']:.2f} / {f['load_before']:.2f} → {f['load']:.2f} |"
        )
    ws, fs, ms = stats(rust), stats(floor), stats(rust, lambda r: r["rss_mib"])
    es = stats([r for r in rust if r.get("summary")], lambda r: r["summary"]["elapsed_ms"] / 1000)
    L.append("\n| | runs | median (min–max) |")
    L.append("|---|---|---|")
    L.append(f"| verify: whole process (wall time around it) | {runs(ws)} | {fmt_s(ws)} |")
    L.append(f"| verify: its own `elapsed_ms` (connect and schema check to the closing line) | {runs(es)} | {fmt_s(es)} |")
    L.append(f"| the floor: the five joins by hand, on an open connection | {runs(fs)} | {fmt_s(fs)} |")
    L.append(f"| verify: peak RSS | {runs(ms)} | {fmt_mib(ms)} |")
    if ws and fs:
        ratio = ws["median"] / fs["median"]
        L.append(
            f"\n**verify against the floor, ratio of medians: {ratio:.2f}×** (target at most 1.3×: "
            f"{'met' if ratio <= 1.3 else '**missed**'}); median of the paired ratios {med(ratios):.2f}× "
            f"({min(ratios):.2f}–{max(ratios):.2f})."
            if ratios else f"\n**verify against the floor, ratio of medians: {ratio:.2f}×**."
        )
    if ms:
        mb = ms["max"] * 1.048576
        L.append(f"**Peak RSS: {ms['max']:.1f} MiB at most ({mb:.1f} MB)** (target under 50 MB: {'met' if mb < 50 else '**missed**'}).")
    fp = [f["statement_ms"] for f in floor if f["ok"]]
    if fp:
        L.append("\nThe floor, query by query (ms, median with min–max, over its timed runs):\n")
        L.append("| query | findings | ms |")
        L.append("|---|---|---|")
        for key, _ in Bench.VERIFY_FLOOR:
            xs = sorted(f[key] for f in fp)
            L.append(f"| {key} | {len(expected[key])} | {med(xs):.0f} ({xs[0]:.0f}–{xs[-1]:.0f}) |")
    last = next((r for r in reversed(rust) if r.get("summary")), None)
    if last:
        L.append("\nverify's closing line (the last timed run):\n")
        L.append("```json\n" + json.dumps(last["summary"]) + "\n```\n")
        log_lines = [line for _, line in last["stderr"]]
        shown = log_lines if len(log_lines) <= 12 else log_lines[:6] + ["..."] + log_lines[-6:]
        L.append("Its log (the first and last 6 lines when there are more than 12):\n")
        L.append("```\n" + "\n".join(shown) + "\n```\n")
    page = v.get("page")
    if page:
        after, through, n = page["page"]
        L.append(f"### One page of the record, four ways (once, for information)\n")
        L.append(
            f"The record's {n:,} users after {after:,} (through {through:,}), on one connection, four ways: verify's "
            "five statements over the page's ids as an `IN` list; the same with the page read from the record, `IN "
            "(SELECT user_id FROM erasure_record WHERE user_id <= ... AND user_id > ...)` (177ebb4, reverted); the "
            "proposed form, whose via entries join the record first (`FROM erasure_record AS r JOIN orders AS h1 ON "
            "h1.user_id = r.user_id JOIN order_items AS t0 ON ... WHERE r.user_id <= ... AND r.user_id > ...`), the "
            "entries without hops as 177ebb4; and the floor's five joins limited to that range of the record (`AND "
            f"r.user_id > {after} AND r.user_id <= {through}`). Reads are the session's `Handler_read_%` counters "
            "across each query.\n"
        )
        L.append("| entry | verify's `IN` list of the ids: ms | reads (key / next / rnd_next) "
                 "| `IN (SELECT user_id FROM record ...)` on the range (177ebb4, reverted): ms | reads "
                 "| proposed: the record joined first: ms | reads "
                 "| the floor's join on the range: ms | reads |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        reads = lambda h: f"{h.get('Handler_read_key', 0):,} / {h.get('Handler_read_next', 0):,} / {h.get('Handler_read_rnd_next', 0):,}"  # noqa: E731
        total = {"in": 0, "recorded": 0, "proposed": 0, "join": 0}
        for table, _ in verify_statements():
            cells = []
            for form in total:
                x = page[form][table]
                total[form] += x["ms"]
                cells.append(f"{x['ms']:.0f} | {reads(x['handler'])}")
            L.append(f"| {table} | " + " | ".join(cells) + " |")
        L.append("| all five | " + " | | ".join(f"{total[f]:.0f}" for f in total) + " | |")
        cols = ["id", "select_type", "table", "type", "key", "ref", "rows", "Extra"]
        for form, name in (("in", "verify's `IN` list of the ids"), ("recorded", "`IN (SELECT user_id FROM record ...)` on the range (177ebb4, reverted)"),
                           ("proposed", "proposed, the record joined first"), ("join", "the floor's join on the range")):
            L.append(f"\nEXPLAIN, {name}:\n")
            L.append("| entry | " + " | ".join(cols) + " |")
            L.append("|" + "---|" * (len(cols) + 1))
            for table, _ in verify_statements():
                for row in page[form][table]["explain"]:
                    L.append(f"| {table} | " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in cols) + " |")
    failed = [r for r in rust + floor if not r["ok"]]
    L.append(
        f"\nEvery run was checked: verify's exit 1 (findings), its closing line's `users_checked` {db.record_users:,}, "
        f"`findings` {n_findings} and `tables` (rows per table), and its finding lines exactly the expected users "
        "and rows; the floor's five results exactly the same users and rows"
        + (f" — **{len(failed)} runs failed a check and are left out of the figures**." if failed else "; every run passed.")
        + " Neither changes anything, so every run read the same database.\n"
    )
    return L


def map_report(args, facts, m):
    L = []
    rust, python, floor = m["rust"], m["python"], m["floor"]
    sizes = m["sizes"]
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    loads = lambda rs: f"{min(r['load'] for r in rs):.2f}–{max(r['load'] for r in rs):.2f}" if rs else "n/a"  # noqa: E731
    L.append("### 10,000 removals over a three-table erasure map, user-purge against the Python reference (alternating)\n")
    L.append(
        f"A database of its own (`{MAP_DATABASE}`"
        + (f", seeded in {m['seeded_in']:.0f} s with one `INSERT ... SELECT` from MariaDB's sequence engine per table" if m["seeded_in"] else ", kept from an earlier run")
        + f", dropped afterwards unless `--keep-map-database`), on a {facts['buffer_pool']} MiB buffer pool:\n"
    )
    L.append("| table | rows | shape | data and indexes |")
    L.append("|---|---|---|---|")
    L.append(f"| `users` | {USERS:,} | `id` primary key (as the other cases') | {sizes.get('users', 0):.0f} MB |")
    L.append(
        f"| `sessions` | {USERS * SESSIONS_PER_USER:,} | {SESSIONS_PER_USER} per user, `user_id BIGINT UNSIGNED` indexed, "
        f"no foreign key | {sizes.get('sessions', 0):.0f} MB |"
    )
    L.append(
        f"| `invoices` | {USERS:,} | 1 per user, `customer_id` indexed; `email`, `phone` nullable, `name` NOT NULL | "
        f"{sizes.get('invoices', 0):.0f} MB |"
    )
    L.append(
        f"\nThe map, [`bench/erasure-map.toml`](erasure-map.toml): both programs send these statements, in this order, "
        "each over the round's 10,000 ids (ascending) in one `IN` list, then one `COMMIT`, then acknowledge:\n"
    )
    L.append("```sql")
    for table, sql in m["statements"]:
        L.append(sql.replace("%s", "(...)") + f";  -- {MAP_ROWS[table] * 10_000:,} rows")
    L.append("COMMIT;\n```\n")
    rust_argv, python_argv = m["argv"]
    L.append("```\n" + shown(args, rust_argv) + "\n" + shown(args, python_argv) + "\n```\n")
    rs, ps, fs = stats(rust), stats(python), stats(floor)
    rm, pm = stats(rust, lambda r: r["rss_mib"]), stats(python, lambda r: r["rss_mib"])
    pt = stats(python, lambda r: r["summary"]["task_ms"] / 1000)
    L.append("| program | runs | wall time | peak RSS | load (1-minute) as the runs ended |")
    L.append("|---|---|---|---|---|")
    L.append(f"| user-purge (release), `--erasure-map` | {runs(rs)} | {fmt_s(rs)} | {fmt_mib(rm)} | {loads(rust)} |")
    L.append(f"| Python reference, `--map` | {runs(ps)} | {fmt_s(ps)} | {fmt_mib(pm)} | {loads(python)} |")
    L.append(f"| Python reference, the task alone (no interpreter start or imports) | {runs(pt)} | {fmt_s(pt)} | | |")
    L.append(
        f"| the three statements and COMMIT alone (READ COMMITTED, as the job runs them), on an open connection: "
        f"the database's share | {runs(fs)} | {fmt_s(fs)} | | {loads(floor)} |"
    )
    if rs and ps:
        L.append(
            f"\n**Ratio of medians (Python / user-purge): {ps['median'] / rs['median']:.1f}×** whole process"
            + (f"; {pt['median'] / rs['median']:.1f}× against the Python task alone." if pt else ".")
        )
    rp = [phases(r)[0] for r in rust if r["ok"]]
    rp = [p for p in rp if len(p) == 3]
    pp = [r["summary"] for r in python if r["ok"]]
    fp = [f["statement_ms"] for f in floor if f["ok"]]
    if rp and pp:
        L.append("\nWhere the time goes (medians over the same runs, ms; user-purge's from its per-round log lines):\n")
        L.append("| phase | user-purge | Python reference | the statements alone (READ COMMITTED) |")
        L.append("|---|---|---|---|")
        r_rest = med([r["wall"] * 1000 - sum(phases(r)[0].values()) for r in rust if r["ok"] and len(phases(r)[0]) == 3])
        p_rest = med([r["wall"] * 1000 - r["summary"]["task_ms"] - r["summary"]["import_ms"] for r in python if r["ok"]])
        L.append(f"| interpreter start, imports, exit | – | {med([p['import_ms'] for p in pp]) + p_rest:.0f} (imports {med([p['import_ms'] for p in pp]):.0f}) | |")
        L.append(f"| pull (and decode, for user-purge) | {med([p['receive'] for p in rp]):.0f} | {med([p['pull_ms'] for p in pp]):.0f} in {med([p['pulls'] for p in pp]):.0f} sequential Pulls | |")
        L.append(f"| decode | (in pull) | {med([p['decode_ms'] for p in pp]):.0f} | |")
        L.append(
            f"| the three statements and commit | {med([p['delete'] for p in rp]):.0f} | "
            f"{med([p['delete_ms'] for p in pp]):.0f} (connect included) | {med([sum(f.values()) for f in fp]):.0f} |"
        )
        for key, name in [
            ("sessions", "DELETE sessions"),
            ("invoices", "UPDATE invoices"),
            ("users", "DELETE users"),
            ("commit", "COMMIT"),
        ]:
            L.append(
                f"| … {name} | (not logged apart) | {med([p['statement_ms'][key] for p in pp]):.0f} | "
                f"{med([f[key] for f in fp]):.0f} |"
            )
        L.append(f"| acknowledge | {med([p['ack'] for p in rp]):.0f} | {med([p['ack_ms'] for p in pp]):.0f} | |")
        L.append(f"| everything else (process start, connects, exit) | {r_rest:.0f} | {med([p['setup_ms'] for p in pp]):.0f} (client setup) | |")
    failed = [r for r in rust + python + floor if not r["ok"]]
    L.append(
        "\nEvery run was checked: exit 0, 10,000 received and acknowledged, the summary's rows per table "
        "(`tables`: sessions 30,000, invoices 10,000, users 10,000), the users and their sessions gone, their "
        f"invoices kept with `email` and `phone` NULL and `name` '{ERASED_NAME}'"
        + (f" — **{len(failed)} runs failed a check and are left out of the figures**." if failed else "; every run passed.")
        + " Then the users and sessions were inserted again and the invoices un-redacted, every value as seeded; "
        f"after the last: {', '.join(f'{k} {v:,}' for k, v in m['after'].items())}."
    )
    L.append(
        "\nuser-purge runs the statements under READ COMMITTED; the Python reference under PyMySQL's default "
        "REPEATABLE READ, as the original task did (as in the `compare` case).\n"
    )
    return L


def heavy_report(args, facts, h):
    L = []
    ways = h["ways"]
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    L.append(f"### One user's {HEAVY_ROWS:,} rows: chunked, atomic, the single statement, pt-archiver\n")
    L.append(f"Load (`uptime`) before: `{h['uptime'][0]}`; after: `{h['uptime'][1]}`.\n")
    sizes = h["sizes"] or {}
    L.append(
        f"A database of its own (`{HEAVY_DATABASE}`), both tables dropped and seeded again before each way ("
        + ("one `INSERT ... SELECT` per table from MariaDB's sequence engine" if h["sequence"] else "doubling `INSERT ... SELECT`s: the server has no sequence engine")
        + f"; then `ANALYZE TABLE`, and a wait of up to {args.heavy_settle} s for InnoDB's history list to empty), "
        f"dropped afterwards unless `--keep-heavy-database`; no foreign key; {facts['buffer_pool']} MiB buffer pool:\n"
    )
    L.append("| table | rows | shape | data and indexes, as seeded |")
    L.append("|---|---|---|---|")
    L.append(
        f"| `events` | {HEAVY_ROWS + HEAVY_USERS - 1:,} | `id BIGINT UNSIGNED AUTO_INCREMENT` primary key, `user_id` indexed, "
        f"`kind VARCHAR(32)`, `payload VARCHAR(255)` (about 50 bytes of JSON), `created_at`; user {HEAVY_USER}'s "
        f"{HEAVY_ROWS:,} rows are ids 1 .. {HEAVY_ROWS:,}, then one row for each other user | {sizes.get('events', 0):.0f} MB |"
    )
    L.append(f"| `users` | {HEAVY_USERS:,} | `id` primary key | {sizes.get('users', 0):.0f} MB |")
    L.append("\nThe ways, in the order they ran:\n")
    L.append("```")
    for way, rs in ways.items():
        if not rs:
            continue
        if way == "floor":
            L.append(f"# floor: on a PyMySQL connection opened beforehand (READ COMMITTED, as the job's session), timed from the statement to the end of COMMIT\nDELETE FROM events WHERE user_id = {HEAVY_USER}; COMMIT;")
        elif way == "pt-archiver":
            L.append(f"# pt-archiver ({h['pt_version']})\n" + shown(args, rs[0]["argv"]))
        else:
            L.append(f"# user-purge, {way}, on one USER_REMOVED event for user {HEAVY_USER} (a fresh subscription)\n" + shown(args, rs[0]["argv"]))
    L.append("```\n")
    L.append(
        f"The largest transaction: a side connection polled `information_schema.innodb_trx` every {HEAVY_POLL * 1000:.0f} ms "
        "during the run (joined to `information_schema.processlist` on the connection id, the transactions of connections "
        f"with `{HEAVY_DATABASE}` selected), and this is the largest `trx_rows_modified` it saw; a transaction that "
        "commits between two polls is seen smaller or not at all, so it is a lower bound, and `transactions seen` "
        "counts those that had modified rows when polled. Not every 50 ms: InnoDB serves `innodb_trx` from a buffer "
        "that it refreshes only when more than 0.1 s has passed since it was last read, so a 50 ms poll read one "
        "snapshot, the first, for a whole run. (The shared server has no binary log to read instead.)\n"
    )
    L.append("| way | wall time | rows per second | largest transaction (rows modified, seen) | transactions seen (polls, ms apart) | peak RSS | load (1-minute), start → end |")
    L.append("|---|---|---|---|---|---|---|")
    names = {
        "chunked": f"user-purge, `chunked = true`, default `--chunk-rows` ({10_000:,}), whole process",
        "atomic": f"user-purge, atomic, `--chunk-rows {HEAVY_ATOMIC_CHUNK_ROWS}`, whole process",
        "floor": "the single statement by hand, on an open connection (the floor)",
        "pt-archiver": f"pt-archiver `--limit {HEAVY_PT_LIMIT} --commit-each --bulk-delete`, whole process",
    }
    for way, rs in ways.items():
        for r in rs:
            t = r["trx"]
            L.append(
                f"| {names[way]}{'' if r['ok'] else ' (**failed a check**: ' + '; '.join(r['problems']) + ')'} | "
                f"{r['wall']:.2f} s | {HEAVY_ROWS / r['wall']:,.0f} | {t['largest']:,} | {t['transactions']:,} "
                f"({t['polls']:,}, {t['interval_ms']:.0f}) | {str(round(r['rss_mib'], 1)) + ' MiB' if 'rss_mib' in r else ''} | "
                f"{r['load_before']:.2f} → {r['load']:.2f} |"
            )
    rate = lambda way: med([HEAVY_ROWS / r["wall"] for r in ways.get(way, []) if r["ok"]])  # noqa: E731
    c, f, pt, a = rate("chunked"), rate("floor"), rate("pt-archiver"), rate("atomic")
    notes = []
    if c and f:
        notes.append(f"chunked against the single statement: **{c / f:.2f}×** its rows per second (target at least 0.8×: {'met' if c / f >= 0.8 else '**missed**'})")
    if c and pt:
        notes.append(f"chunked against pt-archiver: **{c / pt:.2f}×** (target at least 1×: {'met' if c / pt >= 1 else '**missed**'})")
    if a and f:
        notes.append(f"atomic against the single statement: {a / f:.2f}×")
    if notes:
        L.append("\n" + "; ".join(notes) + ".")
    for way in ("floor",):
        for r in ways.get(way, []):
            L.append(
                f"\nThe floor's `DELETE` took {r['statement']:.2f} s and its `COMMIT` {r['commit'] * 1000:.0f} ms; its "
                "one transaction is that one statement, so its size is exact: the rows the `DELETE` reported."
            )
    for way in ("chunked", "atomic"):
        for r in ways.get(way, []):
            lines = [line for _, line in r.get("stderr", []) if line.strip()]
            if lines:
                L.append(f"\nuser-purge's log, {way} (the first and last 6 lines when there are more than 12):\n")
                shown = lines if len(lines) <= 12 else lines[:6] + [f"... {len(lines) - 12} more lines ..."] + lines[-6:]
                L.append("```\n" + "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", x) for x in shown) + "\n```")
            if r.get("summary"):
                L.append(f"\nIts summary line: `{json.dumps(r['summary'])}`")
    for r in ways.get("pt-archiver", []):
        stat = r["stdout"].strip()
        if stat:
            L.append("\npt-archiver's `--statistics`:\n\n```\n" + stat + "\n```")
    failed = [r for rs in ways.values() for r in rs if not r["ok"]]
    L.append(
        f"\nEvery way was checked: user {HEAVY_USER}'s {HEAVY_ROWS:,} events gone, the other users' {HEAVY_USERS - 1:,} "
        f"events and {HEAVY_USERS - 1:,} users left, user {HEAVY_USER}'s users row gone after user-purge (the floor and "
        "pt-archiver erase only the events); user-purge's exit 0, 1 received and acknowledged and its summary's `tables` "
        f"(events {HEAVY_ROWS:,}, users 1); pt-archiver's exit 0 and its `DELETE {HEAVY_ROWS}`"
        + (f" — **{len(failed)} failed a check**." if failed else "; every way passed.")
    )
    L.append("")
    return L


def drain_report(args, r):
    L = []
    n = args.drain_messages
    summary = r["summary"] or {}
    received = summary.get("received") or 0
    L.append(f"### Draining {n:,} messages in rounds of {args.drain_batch:,}\n")
    L.append(
        f"The backlog: {n:,} USER_REMOVED events for distinct users in random order"
        + (" (every user of the table)" if n == USERS else "")
        + f", published before the run in {r['publish']:.0f} s (not timed). The run:\n"
    )
    argv = [Path(a).name if a == args.binary else a for a in r["argv"]]
    L.append("```\n" + shlex.join(argv) + "\n```\n")
    L.append("| received | rounds | exit | wall time | messages per second | peak RSS | load (1-minute), start → end |")
    L.append("|---|---|---|---|---|---|---|")
    L.append(
        f"| {received:,} | {summary.get('rounds')} | {r['code']} | {r['wall']:.1f} s | "
        f"{received / r['wall']:,.0f} | {r['rss_mib']:.1f} MiB | {r['load_before']:.2f} → {r['load']:.2f} |"
    )
    if not r["ok"]:
        L.append(f"\n**Not everything was done: {'; '.join(r['problems'])}.**")
    rs = rounds(r)
    full = [x for x in rs if {"receive", "delete", "ack"} <= x.keys()]
    if full:
        total = {k: sum(x[k] for x in full) for k in ("receive", "delete", "ack")}
        rest = r["wall"] * 1000 - sum(total.values())
        L.append("\nWhere the time goes, from the job's per-round log lines (ms):\n")
        L.append("| phase | total | share | per round: median (min–max) |")
        L.append("|---|---|---|---|")
        for k, name in [
            ("receive", "receive (Pulls and decoding)"),
            ("delete", f"delete {args.drain_batch:,} users (and their orders by cascade) and commit"),
            ("ack", "acknowledge"),
        ]:
            xs = sorted(x[k] for x in full)
            L.append(
                f"| {name} | {total[k]:,} | {total[k] / (r['wall'] * 1000):.0%} | "
                f"{statistics.median(xs):.0f} ({xs[0]}–{xs[-1]}) |"
            )
        L.append(f"| everything else (start, connects, between rounds, exit) | {rest:,.0f} | {rest / (r['wall'] * 1000):.0%} | |")
        # The first and last tenths of the run, to show whether it slows down
        # as the table empties or the emulator's backlog shrinks.
        tenth = max(1, len(full) // 10)
        first, last = full[:tenth], full[-tenth:]
        med = lambda part, k: statistics.median(x[k] for x in part)  # noqa: E731
        L.append(
            f"\nFirst {len(first)} and last {len(last)} rounds, medians: delete {med(first, 'delete'):.0f} and "
            f"{med(last, 'delete'):.0f} ms, receive {med(first, 'receive'):.0f} and {med(last, 'receive'):.0f} ms."
        )
    short = [(i + 1, x["messages"]) for i, x in enumerate(rs[:-1]) if x["messages"] < args.drain_batch]
    if short:
        L.append(
            f"\nRounds that took fewer than {args.drain_batch:,} messages before the last: "
            + ", ".join(f"round {i} ({m:,})" for i, m in short[:20])
            + (f" and {len(short) - 20} more" if len(short) > 20 else "")
            + "."
        )
    else:
        L.append(f"\nEvery round but the last took {args.drain_batch:,} messages.")
    if rs:
        L.append(f"The last round took {rs[-1]['messages']:,}.")
    L.append("")
    return L


if __name__ == "__main__":
    main()
