#!/usr/bin/env bash
# bench/run.sh: aksara against its peers in one run (issue 6), written to BENCHMARKS.md.
#
# 1. Builds aksara and the sqlx floor (bench/floor) with --release.
# 2. Starts a throwaway PostgreSQL cluster: initdb into a private folder, scram-sha-256 for
#    every connection, a free port on 127.0.0.1, a private socket directory, TLS on with a
#    self-signed certificate when openssl is present (as Debian's packaged clusters have it).
#    As root, initdb and postgres run as the `postgres` system user (PostgreSQL refuses root).
#    A streaming standby of it (`pg_basebackup -R`, its own port) for the primary+replica row.
# 3. Starts a silent listener (accepts, never answers) and picks a port where nothing listens.
# 4. Hands over to bench/bench.py, which times every case with hyperfine in interleaved rounds
#    (or with its own loop when hyperfine is missing) and writes the table.
#
# It exits non-zero only when something could not be measured, never because a number was
# slow. A run takes about 1-2 minutes once the release builds are cached.
#
# Environment: ROUNDS (default 15), BENCH_OUT (default: BENCHMARKS.md at the repository root),
# CARGO_TARGET_DIR (respected), BENCH_NO_BUILD=1 (use the binaries already built),
# AKSARA_BIN / FLOOR_BIN (time these binaries instead, e.g. an older build; with BENCH_NO_BUILD=1),
# BENCH_NO_HYPERFINE=1 (use the built-in loop even when hyperfine is installed),
# BENCH_ON_DISK=1 (keep the clusters in TMPDIR even when /dev/shm is a tmpfs with room).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
    say "cannot measure: $*"
    exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is needed (the timing loop, the silent listener and the report)"
command -v cargo >/dev/null 2>&1 || die "cargo is needed to build aksara (https://rustup.rs)"

# hyperfine: install it when missing and apt can; otherwise bench.py times with its own loop.
if [ "${BENCH_NO_HYPERFINE:-0}" != 1 ] && ! command -v hyperfine >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    say "installing hyperfine with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
        { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq hyperfine >/dev/null 2>&1; } ||
        say "hyperfine could not be installed; using the built-in timing loop"
fi

# PostgreSQL binaries, called directly: Debian's /usr/bin wrappers add ~18 ms of Perl.
PGBIN=""
for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && { PGBIN=$dir; break; }
done
if [ -z "$PGBIN" ] && command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    PGBIN=$(pg_config --bindir)
fi
if [ -z "$PGBIN" ] && command -v initdb >/dev/null 2>&1; then
    PGBIN=$(dirname "$(command -v initdb)")
fi
[ -n "$PGBIN" ] || die "no PostgreSQL server binaries (initdb); install them: apt-get install -y postgresql"
for tool in initdb postgres psql pg_isready createuser createdb pg_basebackup; do
    [ -x "$PGBIN/$tool" ] || die "$PGBIN/$tool is missing"
done

# Builds (not part of the timed run; cached after the first).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
AKSARA=${AKSARA_BIN:-$TARGET/release/aksara}
FLOOR=${FLOOR_BIN:-$TARGET/release/floor}
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    say "building aksara and bench/floor with --release (target: $TARGET)"
    build_started=$(date +%s)
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet || die "cargo build --release failed"
    (cd bench/floor && CARGO_TARGET_DIR=$TARGET cargo build --release --quiet) || die "building bench/floor failed"
    say "built in $(($(date +%s) - build_started)) s"
fi
[ -x "$AKSARA" ] || die "$AKSARA is missing"
[ -x "$FLOOR" ] || die "$FLOOR is missing"

# The throwaway cluster, on tmpfs when /dev/shm is one with 2 GiB free (as the test suite's
# clusters are). A disk's own costs are not what the bench compares, and one of them grows with
# the run itself: ext4 without a journal (the root filesystem of the CI machines) skips every
# inode freed in the last 60-360 s each time it allocates one, so every file the server creates
# (doctor's create-table probe, dbsetup's CREATE DATABASE) got slower the more the bench, or
# anything before it, had deleted (bench/NOTES.md section 19).
WORK_ROOT=${TMPDIR:-/tmp}
if [ "${BENCH_ON_DISK:-0}" != 1 ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
    [ "$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 2097152 ] 2>/dev/null; then
    WORK_ROOT=/dev/shm
fi
WORK=$(mktemp -d "$WORK_ROOT/aksara-bench.XXXXXX")
WORK_FS="$({ findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK"; } | head -n 1) (\`$WORK_ROOT\`)"
chmod 755 "$WORK"
POSTMASTER_PID=""
STANDBY_PID=""
LISTENER_PID=""
PGBOUNCER_PIDS=()
cleanup() {
    if [ -n "$LISTENER_PID" ]; then kill "$LISTENER_PID" 2>/dev/null || true; fi
    if [ -f "$WORK/standby/postmaster.pid" ]; then
        STANDBY_PID=$(head -n 1 "$WORK/standby/postmaster.pid" 2>/dev/null || true)
    fi
    if [ -n "$STANDBY_PID" ]; then
        kill -QUIT "$STANDBY_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$STANDBY_PID" 2>/dev/null || break; sleep 0.05; done
    fi
    for pid in "${PGBOUNCER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    done
    if [ -n "${HBA_POSTMASTER_PID:-}" ]; then
        kill -QUIT "$HBA_POSTMASTER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$HBA_POSTMASTER_PID" 2>/dev/null || break; sleep 0.05; done
    fi
    if [ -f "$WORK/data/postmaster.pid" ]; then
        POSTMASTER_PID=$(head -n 1 "$WORK/data/postmaster.pid" 2>/dev/null || true)
    fi
    if [ -n "$POSTMASTER_PID" ]; then
        # Immediate shutdown, what `pg_ctl stop -m immediate` sends; wait until it is gone.
        kill -QUIT "$POSTMASTER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$POSTMASTER_PID" 2>/dev/null || break; sleep 0.05; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_server=()
if [ "$(id -u)" -eq 0 ]; then
    id -u postgres >/dev/null 2>&1 ||
        die "running as root, and PostgreSQL refuses root, but there is no postgres system user (useradd --system --user-group postgres)"
    if command -v setpriv >/dev/null 2>&1; then
        as_server=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    else
        as_server=(runuser -u postgres --)
    fi
fi
mkdir -p "$WORK/sock" "$WORK/home" "$WORK/proj" "$WORK/empty"
# dbsetup runs in a project as people have it: a git repository that ignores .env.
GIT_PROJECT=0
if command -v git >/dev/null 2>&1 && git init -q "$WORK/proj" 2>/dev/null; then
    printf '.env\n' >"$WORK/proj/.gitignore"
    GIT_PROJECT=1
fi
PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
printf '%s\n' "$PASSWORD" >"$WORK/pwfile"
chmod 600 "$WORK/pwfile"
if [ "$(id -u)" -eq 0 ]; then chown postgres "$WORK/sock" "$WORK/pwfile"; chown postgres:postgres "$WORK"; fi

say "initdb ($PGBIN)"
"${as_server[@]}" "$PGBIN/initdb" -D "$WORK/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$WORK/pwfile" --locale=C --encoding=UTF8 --no-sync --no-instructions \
    >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
rm -f "$WORK/pwfile"

TLS=0
ssl_args=()
if command -v openssl >/dev/null 2>&1 &&
    openssl req -new -x509 -days 2 -nodes -subj /CN=localhost -newkey rsa:2048 \
        -keyout "$WORK/data/server.key" -out "$WORK/data/server.crt" >/dev/null 2>&1; then
    chmod 600 "$WORK/data/server.key"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$WORK/data/server.key" "$WORK/data/server.crt"; fi
    TLS=1
    ssl_args=(-c ssl=on)
else
    say "openssl missing: the cluster runs without TLS, the TLS rows are skipped"
fi

free_port() {
    # A port on 127.0.0.1 nothing listens on, never the well-known 5432/5433 (those are what
    # "nothing running" probes).
    python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p not in (5432, 5433):
        print(p); break'
}

started_ok=0
for _ in 1 2 3; do
    PORT=$(free_port)
    "${as_server[@]}" "$PGBIN/postgres" -D "$WORK/data" -c port="$PORT" \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/sock" \
        -c fsync=off -c synchronous_commit=off "${ssl_args[@]}" \
        >>"$WORK/server.log" 2>&1 </dev/null &
    POSTMASTER_PID=$!
    for _ in $(seq 200); do
        if "$PGBIN/pg_isready" -q -h "$WORK/sock" -p "$PORT"; then started_ok=1; break; fi
        kill -0 "$POSTMASTER_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ "$started_ok" = 1 ] && break
    POSTMASTER_PID=""
done
[ "$started_ok" = 1 ] || { tail -n 20 "$WORK/server.log" >&2; die "PostgreSQL did not start"; }
say "PostgreSQL on 127.0.0.1:$PORT and $WORK/sock (TLS: $([ $TLS = 1 ] && echo on || echo off))"

# A streaming standby of it for the primary+replica row: a base backup over the socket with
# `-R` (standby.signal and primary_conninfo), then its own port; initdb's pg_hba.conf already
# lets the superuser replicate over the socket. Waits until it streams.
say "pg_basebackup -R (the standby)"
PGPASSWORD=$PASSWORD "${as_server[@]}" "$PGBIN/pg_basebackup" -D "$WORK/standby" -R -X stream \
    -c fast --no-sync -h "$WORK/sock" -p "$PORT" -U postgres >"$WORK/basebackup.log" 2>&1 </dev/null ||
    { cat "$WORK/basebackup.log" >&2; die "pg_basebackup failed"; }
standby_ok=0
for _ in 1 2 3; do
    STANDBY_PORT=$(free_port)
    "${as_server[@]}" "$PGBIN/postgres" -D "$WORK/standby" -c port="$STANDBY_PORT" \
        -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/sock" \
        -c fsync=off "${ssl_args[@]}" >>"$WORK/standby.log" 2>&1 </dev/null &
    STANDBY_PID=$!
    for _ in $(seq 200); do
        if [ "$(PGPASSWORD=$PASSWORD "$PGBIN/psql" -X -A -t -h "$WORK/sock" -p "$PORT" -U postgres -d postgres \
            -c "select count(*) from pg_stat_replication where state = 'streaming'" 2>/dev/null)" = 1 ]; then
            standby_ok=1
            break
        fi
        kill -0 "$STANDBY_PID" 2>/dev/null || break
        sleep 0.05
    done
    [ "$standby_ok" = 1 ] && break
    STANDBY_PID=""
done
[ "$standby_ok" = 1 ] || { tail -n 20 "$WORK/standby.log" >&2; die "the standby did not start streaming"; }
say "standby on 127.0.0.1:$STANDBY_PORT, streaming"
# The project whose .env names both, as the seed page's "Multiple Databases" has it.
mkdir -p "$WORK/replica"
printf '%s\n' "DATABASE_URL=postgresql://postgres@127.0.0.1:$PORT/postgres" \
    "DATABASE_REPLICA_URL=postgresql://postgres@127.0.0.1:$STANDBY_PORT/postgres" >"$WORK/replica/.env"
chmod 600 "$WORK/replica/.env"

# A listener that accepts and never answers, and a port where nothing listens.
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
print(s.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)
' >"$WORK/silent.port" &
LISTENER_PID=$!
for _ in $(seq 100); do [ -s "$WORK/silent.port" ] && break; sleep 0.02; done
SILENT_PORT=$(cat "$WORK/silent.port")
DEAD_PORT=$(free_port)

# PgBouncer (when installed) in front of the cluster, in session and transaction mode, for the
# "doctor through a pooler" rows. It authenticates clients with the superuser's SCRAM secret
# and logs in to the server with the client's SCRAM proof (no password in its files).
PGBOUNCER=$(command -v pgbouncer || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true)
PGB_PORTS=""
if [ -n "$PGBOUNCER" ]; then
    mkdir -p "$WORK/pgb"
    secret=$(PGPASSWORD=$PASSWORD "$PGBIN/psql" -X -A -t -h "$WORK/sock" -p "$PORT" -U postgres -d postgres \
        -c "select rolpassword from pg_authid where rolname = 'postgres'")
    printf '"postgres" "%s"\n' "$secret" >"$WORK/pgb/users.txt"
    for mode in session transaction; do
        pgb_port=$(free_port)
        printf '%s\n' "[databases]" "* = host=$WORK/sock port=$PORT" "[pgbouncer]" \
            "listen_addr = 127.0.0.1" "listen_port = $pgb_port" "unix_socket_dir =" \
            "pool_mode = $mode" "auth_type = scram-sha-256" "auth_file = $WORK/pgb/users.txt" \
            "logfile = $WORK/pgb/$mode.log" >"$WORK/pgb/$mode.ini"
        if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$WORK/pgb"; fi
        "${as_server[@]}" "$PGBOUNCER" "$WORK/pgb/$mode.ini" </dev/null >/dev/null 2>&1 &
        PGBOUNCER_PIDS+=($!)
        for _ in $(seq 250); do
            grep -q "process up" "$WORK/pgb/$mode.log" 2>/dev/null && break
            sleep 0.02
        done
        grep -q "process up" "$WORK/pgb/$mode.log" 2>/dev/null ||
            { cat "$WORK/pgb/$mode.log" >&2 || true; die "PgBouncer ($mode) did not start"; }
        PGB_PORTS="$PGB_PORTS$mode:$pgb_port "
    done
    say "PgBouncer $("$PGBOUNCER" --version | head -n 1 | awk '{print $2}') on ${PGB_PORTS% }"
else
    say "pgbouncer missing: the rows through a pooler are skipped (apt-get install pgbouncer)"
fi

# A second cluster for the "doctor on a failure path" table: pg_hba lets TCP in only over TLS
# and only for postgres, so a plaintext login meets "no pg_hba.conf entry ... no encryption"
# (doctor then tries TLS once: tls_would_pass_hba) and another role meets it with and without
# TLS. Needs TLS (openssl); its rows are skipped without.
HBA_PORT=""
if [ "$TLS" = 1 ]; then
    printf '%s\n' "$PASSWORD" >"$WORK/hba-pwfile"
    chmod 600 "$WORK/hba-pwfile"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$WORK/hba-pwfile"; fi
    "${as_server[@]}" "$PGBIN/initdb" -D "$WORK/hba-data" -U postgres --auth=scram-sha-256 \
        --pwfile="$WORK/hba-pwfile" --locale=C --encoding=UTF8 --no-sync --no-instructions \
        >"$WORK/hba-initdb.log" 2>&1 || { cat "$WORK/hba-initdb.log" >&2; die "initdb (hba cluster) failed"; }
    rm -f "$WORK/hba-pwfile"
    cp "$WORK/data/server.key" "$WORK/data/server.crt" "$WORK/hba-data/"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$WORK/hba-data/server.key" "$WORK/hba-data/server.crt"; fi
    printf '%s\n' "local all all scram-sha-256" "hostssl all postgres 127.0.0.1/32 scram-sha-256" >"$WORK/hba-data/pg_hba.conf"
    hba_ok=0
    for _ in 1 2 3; do
        HBA_PORT=$(free_port)
        "${as_server[@]}" "$PGBIN/postgres" -D "$WORK/hba-data" -c port="$HBA_PORT" \
            -c listen_addresses=127.0.0.1 -c unix_socket_directories="$WORK/sock" \
            -c fsync=off -c ssl=on >>"$WORK/hba-server.log" 2>&1 </dev/null &
        HBA_POSTMASTER_PID=$!
        for _ in $(seq 200); do
            if "$PGBIN/pg_isready" -q -h "$WORK/sock" -p "$HBA_PORT"; then hba_ok=1; break; fi
            kill -0 "$HBA_POSTMASTER_PID" 2>/dev/null || break
            sleep 0.05
        done
        [ "$hba_ok" = 1 ] && break
        HBA_POSTMASTER_PID=""
    done
    [ "$hba_ok" = 1 ] || { tail -n 20 "$WORK/hba-server.log" >&2; die "the hba cluster did not start"; }
    say "PostgreSQL with a TLS-only pg_hba on 127.0.0.1:$HBA_PORT"
fi

# Hermetic: no PG* variable, .pgpass or DATABASE_URL of the person running this leaks in.
for var in $(env | sed -n 's/^\(PG[A-Z_]*\)=.*/\1/p'); do unset "$var"; done
unset DATABASE_URL AKSARA_DB_PASSWORD
export HOME=$WORK/home NO_COLOR=1 LC_ALL=C

export BENCH_ROOT=$ROOT BENCH_AKSARA=$AKSARA BENCH_FLOOR=$FLOOR BENCH_PGBIN=$PGBIN \
    BENCH_PORT=$PORT BENCH_STANDBY_PORT=$STANDBY_PORT BENCH_SOCK=$WORK/sock BENCH_WORK=$WORK BENCH_WORK_FS="$WORK_FS" BENCH_TLS=$TLS \
    BENCH_SILENT_PORT=$SILENT_PORT BENCH_DEAD_PORT=$DEAD_PORT BENCH_PASSWORD=$PASSWORD \
    BENCH_GIT_PROJECT=$GIT_PROJECT BENCH_PGBOUNCER_PORTS="${PGB_PORTS% }" BENCH_HBA_PORT=$HBA_PORT \
    BENCH_OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md} ROUNDS=${ROUNDS:-15}
python3 "$ROOT/bench/bench.py"
