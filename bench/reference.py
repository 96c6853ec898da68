"""The Python task that user-purge replaces, rebuilt for the benchmark.

A faithful reference of the old Celery task, written from its description in
issue 5 (the original is not in this repository): the google-cloud-pubsub
client's synchronous ``pull``, repeated until ``--max-messages`` are held or a
Pull comes back empty; decode each message with the generated protobuf class;
one PyMySQL ``DELETE ... WHERE id IN (...)`` and a commit; then ``acknowledge``
in chunks of 1,000 ack ids, one request after the other.

Rebuilt for PostgreSQL too (issue 20): a ``postgres://`` or ``postgresql://``
database URL runs the same task through psycopg 3 instead of PyMySQL, as a
PostgreSQL team's version of it would. The database part is the only
difference: the same Pulls, the same decoding, one ``DELETE FROM users WHERE id
= ANY(%s)`` with the ids as one array parameter (psycopg's form of an ``IN``
list) in one transaction and a commit, then the same acknowledgements. Only
the URL's driver is imported, and its import counts with the others.

It keeps the old task's behaviour on purpose, including its costs: the whole
process is timed, imports included, as a CronJob-style run would be. The
process prints one JSON line with its counts and its own phase timings, so the
benchmark can tell interpreter start and imports apart from the task itself.

    reference.py --subscription projects/P/subscriptions/S \\
        --database-url mysql://root:@127.0.0.1:3306/db [--max-messages 10000] \\
        [--pull-timeout SECONDS | --pull-timeout default] [--map ERASURE_MAP.toml]

``--pull-timeout default`` passes no timeout, so the client's own default
applies (60 s for Pull in google-cloud-pubsub 2.x): what the original did, and
why it blocked for a minute on an empty subscription. The benchmark runs it so
only on the empty subscription, and reports that case on its own line. With
messages it passes ``--pull-timeout 0.5``, the deadline user-purge gives each
Pull (``--pull-timeout-ms 500``), so that a last, empty Pull costs both the same
and the Python reference is not charged a minute for the end of the backlog.
(With exactly 10,000 messages and ``--max-messages 10000`` neither makes an
empty Pull: both stop once they hold 10,000.)

The DELETE runs under the driver's defaults, as the original's did: on MySQL
PyMySQL's, REPEATABLE READ (user-purge uses READ COMMITTED); on PostgreSQL
psycopg's, a transaction opened by the first statement at the server's READ
COMMITTED (user-purge's level there too).

``--map PATH`` (for the benchmark's ``map`` case; the old task had no such
thing) reads user-purge's erasure map (TOML: ``[[delete]]`` and ``[[redact]]``
entries) and sends what user-purge sends for it: one statement per entry, in
the file's order, each over all the ids (ascending) as one ``IN`` list —
``DELETE FROM t WHERE c IN (...)`` or ``UPDATE t SET a = NULL, b = 'text'
WHERE c IN (...)`` — then one commit, then the acknowledgements. Its
``deleted_rows`` is then the last entry's rows (as user-purge's summary), and
``tables`` and ``statement_ms`` give each entry's rows and time. The map is
read for MySQL only (backquoted names, PyMySQL's escaping).
"""

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from urllib.parse import unquote, urlsplit  # noqa: E402

from google.api_core import exceptions  # noqa: E402
from google.cloud import pubsub_v1  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402
from google.protobuf import timestamp_pb2  # noqa: E402,F401  (registers the dependency)

IMPORTED = time.perf_counter()

ACK_CHUNK = 1_000


def user_event_class():
    """``UserEventData`` from proto/user_events.proto, built the way a generated
    ``_pb2`` module builds it (a file descriptor added to the default pool)."""
    f = descriptor_pb2.FileDescriptorProto(
        name="user_events.proto",
        package="userservice.events.v1",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    m = f.message_type.add(name="UserEventData")
    e = m.enum_type.add(name="EventType")
    for number, name in enumerate(
        [
            "EVENT_TYPE_UNSPECIFIED",
            "USER_CREATED",
            "USER_CHANGED",
            "USER_ACCESS_CHANGED",
            "USER_REMOVED",
        ]
    ):
        e.value.add(name=name, number=number)
    F = descriptor_pb2.FieldDescriptorProto
    m.field.add(
        name="event_type",
        number=1,
        label=F.LABEL_OPTIONAL,
        type=F.TYPE_ENUM,
        type_name=".userservice.events.v1.UserEventData.EventType",
    )
    m.field.add(name="user_id", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_UINT64)
    m.field.add(
        name="occurred_at",
        number=3,
        label=F.LABEL_OPTIONAL,
        type=F.TYPE_MESSAGE,
        type_name=".google.protobuf.Timestamp",
    )
    m.field.add(name="email", number=4, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    m.field.add(name="name", number=5, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    pool = descriptor_pool.Default()
    pool.Add(f)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("userservice.events.v1.UserEventData")
    )


UserEventData = user_event_class()
USER_REMOVED = 4


POSTGRES_SCHEMES = ("postgres", "postgresql")


def driver(url):
    """The URL's engine: a function that opens a DB-API connection to it (no
    autocommit: one transaction up to the commit), and the single-table
    DELETE for it, with one ``%s`` for the ids. Only that engine's driver is
    imported."""
    if urlsplit(url).scheme in POSTGRES_SCHEMES:
        import psycopg

        # libpq reads the URL itself; psycopg sends a list as one array.
        return (lambda: psycopg.connect(url)), "DELETE FROM users WHERE id = ANY(%s)"
    import pymysql

    def connect():
        parts = urlsplit(url)
        return pymysql.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/"),
            autocommit=False,
        )

    # PyMySQL writes a list as a parenthesised list of literals.
    return connect, "DELETE FROM users WHERE id IN %s"


def map_statements(path):
    """(table, SQL with one %s for the id list) per entry of an erasure map,
    in the file's order; the identifiers are backquoted as user-purge does."""
    import tomllib  # only with --map: the old task never imported it

    import pymysql

    with open(path, "rb") as f:
        doc = tomllib.load(f)
    q = lambda name: "`" + name + "`"  # noqa: E731  (the map allows plain identifiers only)
    entries = []
    # tomllib keeps each array of tables, not their interleaving: take the
    # order from the file's own [[delete]] / [[redact]] headers.
    kinds = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            header = line.split("#", 1)[0].strip()
            if header in ("[[delete]]", "[[redact]]"):
                kinds.append(header[2:-2])
    taken = {"delete": iter(doc.get("delete", [])), "redact": iter(doc.get("redact", []))}
    for kind in kinds:
        entry = next(taken[kind])
        table, column = entry["table"], entry["column"]
        if kind == "delete":
            sql = f"DELETE FROM {q(table)} WHERE {q(column)} IN %s"
        else:
            sets = [f"{q(c)} = NULL" for c in entry.get("null", [])]
            sets += [f"{q(c)} = " + pymysql.converters.escape_string(v).join("''")
                     for c, v in entry.get("replace", {}).items()]
            sql = f"UPDATE {q(table)} SET {', '.join(sets)} WHERE {q(column)} IN %s"
        entries.append((table, sql))
    return entries


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--max-messages", type=int, default=10_000)
    parser.add_argument("--pull-timeout", default="default")
    parser.add_argument("--map", default=None, help="an erasure map (TOML): its statements instead of the DELETE")
    args = parser.parse_args()
    began = time.perf_counter()
    connect, delete = driver(args.database_url)
    imported = IMPORTED + (time.perf_counter() - began)
    if args.map:
        if urlsplit(args.database_url).scheme in POSTGRES_SCHEMES:
            parser.error("--map reads the map for MySQL only")
        statements = map_statements(args.map)
    else:
        statements = [("users", delete)]
    pull_kwargs = {}
    if args.pull_timeout != "default":
        pull_kwargs["timeout"] = float(args.pull_timeout)

    subscriber = pubsub_v1.SubscriberClient()  # honours PUBSUB_EMULATOR_HOST

    # Pull until enough messages are held or a Pull comes back empty.
    pulling = time.perf_counter()
    received = []
    pulls = 0
    while len(received) < args.max_messages:
        pulls += 1
        try:
            response = subscriber.pull(
                request={
                    "subscription": args.subscription,
                    "max_messages": args.max_messages - len(received),
                },
                **pull_kwargs,
            )
        except exceptions.DeadlineExceeded:
            break  # nothing arrived within the deadline: drained
        if not response.received_messages:
            break
        received.extend(response.received_messages)
    pulled = time.perf_counter()

    # Decode.
    user_ids = set()
    ack_ids = []
    for message in received:
        event = UserEventData()
        event.ParseFromString(message.message.data)
        if event.event_type == USER_REMOVED and event.user_id:
            user_ids.add(event.user_id)
        ack_ids.append(message.ack_id)
    decoded = time.perf_counter()

    # Delete (or, with a map, each entry's statement in turn) in one
    # transaction and commit.
    deleted_rows = 0
    tables = {}
    statement_ms = {}
    if user_ids:
        ids = sorted(user_ids)
        db = connect()
        try:
            with db.cursor() as cursor:
                for table, sql in statements:
                    began = time.perf_counter()
                    cursor.execute(sql, (ids,))
                    deleted_rows = cursor.rowcount
                    tables[table] = tables.get(table, 0) + deleted_rows
                    statement_ms[table] = round((time.perf_counter() - began) * 1000, 1)
            began = time.perf_counter()
            db.commit()
            statement_ms["commit"] = round((time.perf_counter() - began) * 1000, 1)
        finally:
            db.close()
    deleted = time.perf_counter()

    # Acknowledge in chunks, one request after the other.
    for i in range(0, len(ack_ids), ACK_CHUNK):
        subscriber.acknowledge(
            request={"subscription": args.subscription, "ack_ids": ack_ids[i : i + ACK_CHUNK]}
        )
    acked = time.perf_counter()
    subscriber.close()

    ms = lambda a, b: round((b - a) * 1000, 1)  # noqa: E731
    print(
        json.dumps(
            {
                "received": len(received),
                "removed_ids": len(user_ids),
                "deleted_rows": deleted_rows,
                **({"tables": tables, "statement_ms": statement_ms} if args.map else {}),
                "acked": len(ack_ids),
                "pulls": pulls,
                # The driver's import counts with the others, not with the task.
                "import_ms": ms(STARTED, imported),
                "setup_ms": ms(imported, pulling),
                "pull_ms": ms(pulling, pulled),
                "decode_ms": ms(pulled, decoded),
                "delete_ms": ms(decoded, deleted),
                "ack_ms": ms(deleted, acked),
                "task_ms": ms(imported, acked),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
