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

# PostgreSQL at 127.0.0.1:$POSTGRES_PORT (default 5432; user postgres, no
# password), started when it is down: Debian's cluster on that port if there
# is one (pg_lsclusters), whatever its version; otherwise, or if it does not
# start, a private cluster of this checkout's own, made once by initdb under
# target/postgres-<port>/ (trust authentication, listening on 127.0.0.1 only)
# and started with pg_ctl. It keeps running after the script, as Debian's
# would. PostgreSQL refuses to run as root: as root, both run as the postgres
# OS user.
ensure_postgres() {
  local port=${POSTGRES_PORT:-5432}
  if pg_isready -q -h 127.0.0.1 -p "$port" >/dev/null 2>&1; then
    return 0
  fi
  echo "PostgreSQL is not answering at 127.0.0.1:$port; starting it" >&2
  local version="" cluster=""
  if command -v pg_lsclusters >/dev/null 2>&1; then
    # "15 main 5432 down postgres /var/lib/postgresql/15/main ...": the
    # newest cluster that listens on this port.
    read -r version cluster < <(pg_lsclusters -h 2>/dev/null |
      awk -v port="$port" '$3 == port { print $1, $2 }' | sort -V | tail -n 1) || true
  fi
  if [ -n "$version" ] && [ -n "$cluster" ]; then
    if pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start &&
      wait_for_postgres "$port" 60; then
      return 0
    fi
    echo "Debian's cluster $version/$cluster did not start; trying a private one" >&2
  fi
  start_private_postgres "$port" || return 1
  wait_for_postgres "$port" 60 || {
    echo "error: PostgreSQL did not come up at 127.0.0.1:$port within 60 s" >&2
    return 1
  }
}

# Waits up to $2 seconds for PostgreSQL to answer at 127.0.0.1:$1.
wait_for_postgres() {
  local _
  for _ in $(seq 1 "$2"); do
    if pg_isready -q -h 127.0.0.1 -p "$1" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  return 1
}

# The private cluster of ensure_postgres, on port $1: its programs are
# $POSTGRES_BIN, else the newest /usr/lib/postgresql/*/bin, else initdb's
# directory on the PATH.
start_private_postgres() {
  local port=$1 bin=${POSTGRES_BIN:-}
  if [ -z "$bin" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  if [ -z "$bin" ] && command -v initdb >/dev/null 2>&1; then
    bin=$(dirname "$(readlink -f "$(command -v initdb)")")
  fi
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "error: no initdb (install the postgresql package, or set POSTGRES_BIN)" >&2
    return 1
  fi
  local dir
  # target/ of the checkout this file is in, wherever the caller stands.
  dir="$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)/target/postgres-$port"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
      echo "error: running as root, and there is no postgres OS user to run PostgreSQL as" >&2
      return 1
    fi
    run=(runuser -u postgres --)
  fi
  mkdir -p "$dir"
  [ ${#run[@]} -eq 0 ] || chown postgres: "$dir"
  chmod 0700 "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    echo "initdb: a private cluster in $dir/data" >&2
    rm -rf -- "$dir/data"
    "${run[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      echo "error: initdb failed; its log:" >&2
      cat "$dir/initdb.log" >&2
      return 1
    }
  fi
  # Settings on the command line, not in postgresql.conf: the same data
  # directory serves whichever port it was made for.
  "${run[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir'" \
    start >/dev/null || {
    echo "error: the private PostgreSQL did not start; its log ($dir/log):" >&2
    tail -n 20 "$dir/log" >&2
    return 1
  }
  echo "private PostgreSQL up at 127.0.0.1:$port (data in $dir/data; stop it with" \
    "${run[*]} $bin/pg_ctl -D $dir/data stop)" >&2
}

# Debian packages the tests need that a new machine may lack, installed once.
ensure_packages() {
  local missing=()
  command -v prometheus-pushgateway >/dev/null 2>&1 || missing+=(prometheus-pushgateway)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
  # PostgreSQL's server programs (Debian 12's are version 15), for
  # ensure_postgres and the tests' private clusters.
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
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
