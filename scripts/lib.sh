# Shared by scripts/demo and scripts/test: bring up the local services.
# Source it; it defines functions only.

# MariaDB at 127.0.0.1:3306 (root, empty password), started when it is down.
ensure_mariadb() {
  if mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; then
    return 0
  fi
  echo "MariaDB is not answering; starting it" >&2
  # /run is a tmpfs: the socket directory is gone after a reboot.
  if [ ! -d /run/mysqld ] && id mysql >/dev/null 2>&1; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do
    if mysqladmin --protocol=tcp -h127.0.0.1 -P3306 -uroot ping >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "error: MariaDB did not come up at 127.0.0.1:3306 within 60 s" >&2
  return 1
}

# PostgreSQL at 127.0.0.1:5432 (postgres, no password), started when it is
# down: Debian's cluster, whatever its version.
ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    return 0
  fi
  echo "PostgreSQL is not answering; starting it" >&2
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    echo "error: no PostgreSQL cluster under /etc/postgresql (install the postgresql package)" >&2
    return 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do
    if pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "error: PostgreSQL did not come up at 127.0.0.1:5432 within 60 s" >&2
  return 1
}

# Debian packages the tests need that a new machine may lack, installed once.
ensure_packages() {
  local missing=()
  command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Uses PUBSUB_EMULATOR_HOST when it answers; otherwise starts a private
# emulator on a free port, exports PUBSUB_EMULATOR_HOST, and sets EMULATOR_PID
# so that the caller's trap can stop it (by PID, never by name).
ensure_emulator() {
  EMULATOR_PID=""
  if [ -n "${PUBSUB_EMULATOR_HOST:-}" ] \
    && curl -fsS -m 2 "http://${PUBSUB_EMULATOR_HOST}/v1/projects/probe/topics" >/dev/null 2>&1; then
    return 0
  fi
  local bin=${PUBSUB_EMULATOR_BIN:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}
  if [ ! -x "$bin" ]; then
    echo "error: no Pub/Sub emulator at $bin (install google-cloud-cli-pubsub-emulator, or set PUBSUB_EMULATOR_BIN)" >&2
    return 1
  fi
  local port dir
  port=$(free_port)
  dir=$(mktemp -d -t user-purge-emulator.XXXXXX)
  # The launcher execs java, so this PID is the server's.
  (cd "$dir" && exec "$bin" --host=127.0.0.1 --port="$port" >"$dir/log" 2>&1) &
  EMULATOR_PID=$!
  export PUBSUB_EMULATOR_HOST="127.0.0.1:$port"
  for _ in $(seq 1 120); do
    if curl -fsS -m 2 "http://${PUBSUB_EMULATOR_HOST}/v1/projects/probe/topics" >/dev/null 2>&1; then
      echo "Pub/Sub emulator up at $PUBSUB_EMULATOR_HOST (pid $EMULATOR_PID)" >&2
      return 0
    fi
    if ! kill -0 "$EMULATOR_PID" 2>/dev/null; then
      echo "error: the Pub/Sub emulator exited; its log:" >&2
      cat "$dir/log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "error: the Pub/Sub emulator did not answer within 60 s; its log is $dir/log" >&2
  return 1
}

stop_emulator() {
  if [ -n "${EMULATOR_PID:-}" ]; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
}
