#!/usr/bin/env python3
"""The timing half of bench/run.sh: every case, interleaved, then BENCHMARKS.md.

run.sh prepares the cluster, the binaries and the environment (BENCH_* variables) and calls
this. Each group of commands that are compared with each other is timed in ROUNDS rounds;
every round runs all commands of the group (hyperfine, one invocation per round, commands in
a rotated order, a few runs each; or this file's own loop, which alternates A B C A B C), so
machine noise lands on all of them alike: many short rounds pair the commands closely in time. A median is over all runs; a ratio is the median, over rounds, of
the ratio of the two commands' medians in that round.

Before timing, every command runs once and its exit code and output are checked, so a number
always measures what its row says (a doctor that passes, a failure with the expected code).
Exit status: 0 when everything was measured (whatever the numbers), 1 when something could not
be measured.
"""

import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

E = os.environ
ROOT = E["BENCH_ROOT"]
AKSARA = E["BENCH_AKSARA"]
FLOOR = E["BENCH_FLOOR"]
PGBIN = E["BENCH_PGBIN"]
PORT = E["BENCH_PORT"]
STANDBY_PORT = E["BENCH_STANDBY_PORT"]  # a streaming standby of the cluster (pg_basebackup -R)
SOCK = E["BENCH_SOCK"]
WORK = E["BENCH_WORK"]
WORK_FS = E.get("BENCH_WORK_FS", "")  # the filesystem of the clusters' data folders, e.g. "tmpfs (`/dev/shm`)"
TLS = E["BENCH_TLS"] == "1"
SILENT_PORT = E["BENCH_SILENT_PORT"]
DEAD_PORT = E["BENCH_DEAD_PORT"]
PASSWORD = E["BENCH_PASSWORD"]
GIT_PROJECT = E.get("BENCH_GIT_PROJECT") == "1"
# "session:PORT transaction:PORT" when run.sh started PgBouncer, else empty.
PGBOUNCER_PORTS = [tuple(p.split(":")) for p in E.get("BENCH_PGBOUNCER_PORTS", "").split()]
# The cluster whose pg_hba lets TCP in only over TLS, only for postgres (empty without TLS).
HBA_PORT = E.get("BENCH_HBA_PORT", "")
OUT = E["BENCH_OUT"]
ROUNDS = max(1, int(E.get("ROUNDS", "15")))
HYPERFINE = None if E.get("BENCH_NO_HYPERFINE") == "1" else shutil.which("hyperfine")
SQLX = shutil.which("sqlx")
CONNECT_TIMEOUT = 2

PSQL = f"{PGBIN}/psql"
PG_ISREADY = f"{PGBIN}/pg_isready"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class Cmd:
    def __init__(self, name, command, expect=0, text=None, prepare=None, after=None, judge=None):
        self.name = name
        self.command = command
        self.expect = expect  # exit code
        # Substrings of stdout+stderr that prove the right path ran (a string or a list).
        self.text = [text] if isinstance(text, str) else (text or [])
        self.prepare = prepare  # run before every timed run, not timed
        self.after = after  # a check after the validation run: (description, callable)
        self.judge = judge  # a check of the validation run's output: (description, callable(output))


class Group:
    def __init__(self, gid, cmds, runs, warmup=1, rounds=ROUNDS, shell=False, env=None, cwd=None):
        self.gid = gid
        self.cmds = cmds
        self.runs = runs
        self.warmup = warmup
        self.rounds = rounds
        self.shell = shell  # the commands need a shell (hyperfine subtracts its start-up)
        self.env = env or {}
        self.cwd = cwd or WORK


def url(host_part, db="postgres", params=""):
    return f"postgresql://{host_part}/{db}{params}"


TCP = f"postgres@127.0.0.1:{PORT}"
TCP_URL = url(TCP)  # sslmode=prefer: TLS when the cluster has it
PLAIN_URL = url(TCP, params="?sslmode=disable")
SOCKET_URL = f"postgresql:///postgres?host={SOCK}&port={PORT}&user=postgres"
BASE_ENV = {"PGPASSWORD": PASSWORD}


def healthy_group():
    transports = []
    if TLS:
        transports.append(("tcp-tls", "TCP 127.0.0.1, TLS (sslmode=prefer, server ssl=on)", TCP_URL, "in use (sslmode=prefer)"))
    transports.append(("tcp", "TCP 127.0.0.1, no TLS (sslmode=disable)", PLAIN_URL, "not used (sslmode=disable"))
    transports.append(("socket", "unix socket", SOCKET_URL, "not used (unix socket)"))
    cmds = []
    for tid, _, u, tls_line in transports:
        q = shlex.quote(u)
        cmds += [
            Cmd(f"doctor/{tid}", f"{AKSARA} doctor --url {q}", 0, ["all checks passed", tls_line]),
            Cmd(f"psql/{tid}", f"{PSQL} -X -A -t -c 'select 1' {q}", 0, "1"),
            Cmd(f"floor/{tid}", f"{FLOOR} {q}", 0),
            Cmd(f"pg_isready/{tid}", f"{PG_ISREADY} -d {q}", 0, "accepting connections"),
        ]
    # 9 runs per command per round, not 3: on these 2-vCPU VMs 20-30 % of the runs of doctor and
    # of the floor alike take ~1.4 ms longer, so a round's median of 3 fell on that slow mode in
    # 10-25 % of rounds and the ratio of the same two binaries moved between 1.11 and 1.26 from
    # one run to the next; with 9 a round's median stays on the usual time (bench/NOTES.md
    # section 28).
    return transports, Group("healthy", cmds, runs=9, warmup=1, env=BASE_ENV)


def dbsetup_group():
    reset = (
        f"{PSQL} -X -q -h {SOCK} -p {PORT} -U postgres -d postgres "
        f"-c 'DROP DATABASE IF EXISTS benchapp' -c 'DROP ROLE IF EXISTS benchapp' >/dev/null 2>&1; "
        f"rm -f {WORK}/proj/.env"
    )
    admin = shlex.quote(url(TCP))
    conn = f"-h 127.0.0.1 -p {PORT} -U postgres"
    peers = (
        f"{PGBIN}/createuser {conn} --login benchapp && "
        f"{PGBIN}/createdb {conn} -O benchapp benchapp && "
        f"{PSQL} -X -q {conn} -d benchapp -c \"ALTER ROLE benchapp PASSWORD 'bench-password'\" "
        f"-c 'GRANT ALL ON SCHEMA public TO benchapp'"
    )
    env_file = f"{WORK}/proj/.env"
    cmds = [
        Cmd(
            "dbsetup/aksara",
            f"{AKSARA} dbsetup --non-interactive --admin-url {admin} --db-name benchapp --env-file {env_file}",
            0,
            "is ready",
            prepare=reset,
            after=(".env holds DATABASE_URL", lambda: "DATABASE_URL=" in open(env_file).read()),
        ),
        Cmd("dbsetup/peers", peers, 0, prepare=reset),
    ]
    if SQLX:
        db_url = shlex.quote(url(TCP, db="benchapp"))
        cmds.append(Cmd("dbsetup/sqlx", f"{SQLX} database create --database-url {db_url}", 0, prepare=reset))
    return Group("dbsetup", cmds, runs=1, warmup=0, shell=True, env=BASE_ENV, cwd=f"{WORK}/proj")


def pooler_group():
    """doctor and psql through the same PgBouncer, per pool mode (plaintext: PgBouncer has no
    TLS configured here, and sslmode=prefer would fall back anyway)."""
    cmds = []
    for mode, port in PGBOUNCER_PORTS:
        q = shlex.quote(url(f"postgres@127.0.0.1:{port}", params="?sslmode=disable"))
        cmds += [
            # Session mode passes clean; transaction mode ends with its pooler warnings (asyncpg's
            # prepared statements, session state): the run is the same, the verdict honest.
            Cmd(f"doctor/pgb-{mode}", f"{AKSARA} doctor --url {q}", 0,
                "all checks passed" if mode == "session" else "connection works"),
            Cmd(f"psql/pgb-{mode}", f"{PSQL} -X -A -t -c 'select 1' {q}", 0, "1"),
        ]
    return Group("pooler", cmds, runs=3, warmup=1, env=BASE_ENV)


def replica_group():
    """doctor on a project whose .env names the primary (DATABASE_URL) and its streaming standby
    (DATABASE_REPLICA_URL), against psql connecting to each in turn: what a person would run to
    see that both answer."""
    primary = shlex.quote(url(f"postgres@127.0.0.1:{PORT}"))
    standby = shlex.quote(url(f"postgres@127.0.0.1:{STANDBY_PORT}"))
    both_pass = ("both keys pass", lambda out: out.count("all checks passed") == 2)
    cmds = [
        Cmd("replica/doctor", f"{AKSARA} doctor", 0,
            ["Checking .env (DATABASE_URL, line 1)", "can create tables",
             "Checking .env (DATABASE_REPLICA_URL, line 2)", "read-only, as a replica key expects",
             "DATABASE_REPLICA_URL is a standby"],
            judge=both_pass),
        Cmd("replica/psql", f"{PSQL} -X -A -t -c 'select 1' {primary} && {PSQL} -X -A -t -c 'select 1' {standby}", 0,
            judge=("both answer", lambda out: out.split() == ["1", "1"])),
    ]
    return Group("replica", cmds, runs=3, warmup=1, shell=True, env=BASE_ENV, cwd=f"{WORK}/replica")


def fast_failure_group():
    refused = shlex.quote(url(f"postgres@127.0.0.1:{DEAD_PORT}"))
    wrong = shlex.quote(url(f"postgres:wrong-password@127.0.0.1:{PORT}"))
    cmds = [
        Cmd("refused/doctor", f"{AKSARA} doctor --url {refused}", 1, "[connection-refused]"),
        Cmd("refused/psql", f"{PSQL} -X -c 'select 1' {refused}", 2, "Connection refused"),
        Cmd("refused/pg_isready", f"{PG_ISREADY} -d {refused}", 2, "no response"),
        Cmd("wrongpw/doctor", f"{AKSARA} doctor --url {wrong}", 1, "[auth-failed]"),
        Cmd("wrongpw/psql", f"{PSQL} -X -c 'select 1' {wrong}", 2, "password authentication failed"),
    ]
    return Group("failures", cmds, runs=3, warmup=1, env=BASE_ENV)


def silent_group():
    silent = shlex.quote(url(f"postgres@127.0.0.1:{SILENT_PORT}", params=f"?connect_timeout={CONNECT_TIMEOUT}"))
    cmds = [
        Cmd("silent/doctor", f"{AKSARA} doctor --url {silent}", 1, "[connection-timeout]"),
        Cmd("silent/psql", f"{PSQL} -X -c 'select 1' {silent}", 2, "timeout expired"),
        Cmd("silent/pg_isready", f"{PG_ISREADY} -t {CONNECT_TIMEOUT} -d {silent}", 2, "no response"),
    ]
    return Group("silent", cmds, runs=1, warmup=0, rounds=min(ROUNDS, 3), env=BASE_ENV)


def not_postgres_server():
    """A listener that answers like a web server and hangs up: something that is not PostgreSQL
    (doctor's probe after a failure tells it apart). Returns its port."""
    import socket
    import threading

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve():
        while True:
            conn, _ = listener.accept()
            try:
                conn.recv(64)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1]


def failure_path_rows():
    """Each failure whose diagnosis probes more than the failed connection
    (src/commands/doctor/failure.rs): (id, failure, what doctor adds, URL, doctor's code, psql's words)."""
    pw = f"postgres:{PASSWORD}"
    rows = [
        ("refused", "refused port (127.0.0.1, nothing listens)",
         "local servers probed, the other loopback address, the start command",
         url(f"postgres@127.0.0.1:{DEAD_PORT}"), "[connection-refused]", "Connection refused"),
        ("twin", "`[::1]` in the URL, the server on 127.0.0.1 only",
         "the same probes; the loopback twin answers",
         url(f"postgres@[::1]:{PORT}"), "listens at 127.0.0.1:", "failed"),
        ("nosocket", "no socket file in the socket folder",
         "local servers probed, the start command",
         url(f"postgres@{WORK.replace('/', '%2F')}%2Fempty:{DEAD_PORT}"), "[connection-refused]", "No such file"),
        ("notpg", "something that is not PostgreSQL answers",
         "a protocol probe (SSLRequest) after the failed login",
         url(f"postgres@127.0.0.1:{not_postgres_server()}", params=f"?connect_timeout={CONNECT_TIMEOUT}"), "[not-postgres]", "failed"),
        ("dbmissing", "the database does not exist",
         "a second login (to `postgres`) for the names close to it",
         url(f"{pw}@127.0.0.1:{PORT}", db="benchmissing"), "[database-missing]", "does not exist"),
        ("wrongpw", "wrong password (nothing extra: the control row)",
         "nothing",
         url(f"postgres:wrong-password@127.0.0.1:{PORT}"), "[auth-failed]", "password authentication failed"),
    ]
    if HBA_PORT:
        rows += [
            ("sslreq", "pg_hba lets only TLS in, the URL says `sslmode=disable`",
             "a second attempt with TLS (would TLS pass pg_hba?)",
             url(f"{pw}@127.0.0.1:{HBA_PORT}", params="?sslmode=disable"), "[ssl-required]", "no pg_hba.conf entry"),
            ("nohba", "no pg_hba line for the role, with or without TLS",
             "a third attempt with TLS after libpq's two (prefer)",
             url(f"benchnone:x@127.0.0.1:{HBA_PORT}"), "[no-hba-entry]", "no pg_hba.conf entry"),
        ]
    return rows


def failure_path_group(rows):
    cmds = []
    for rid, _, _, u, code, psql_words in rows:
        q = shlex.quote(u)
        cmds += [
            Cmd(f"fpath-doctor/{rid}", f"{AKSARA} doctor --url {q}", 1, code),
            Cmd(f"fpath-psql/{rid}", f"{PSQL} -X -w -c 'select 1' {q}", 2, psql_words),
            Cmd(f"fpath-floor/{rid}", f"{FLOOR} {q}", 1, "error:"),
        ]
    return Group("failure-path", cmds, runs=3, warmup=1, env=BASE_ENV)


def write_failure_path_table(w, results, goals, rows):
    w("## `aksara doctor` on a failure path")
    w("")
    w("Extra probing happens only after a failure (src/commands/doctor/failure.rs). Each row is a failure")
    w("whose diagnosis looks further than the failed connection, timed against the same failing connection")
    w("made by psql (libpq's attempts, which aksara's model repeats) and by the sqlx floor (one attempt).")
    w("\"added\" is doctor minus the faster of the two: the probing plus doctor's own report, goal ≤ 300 ms.")
    w("A silent server is not here: waiting out its timeout is the failure itself, and doctor probes")
    w("nothing more after a timeout (the \"Failure paths\" table above has it).")
    w("")
    w("| failure | what doctor adds | aksara doctor | `psql` | sqlx floor | added (goal ≤ 300 ms) |")
    w("|---|---|---:|---:|---:|---:|")
    for rid, title, adds, _, _, _ in rows:
        d, p, f = (results.median_ms(f"fpath-{k}/{rid}") for k in ("doctor", "psql", "floor"))
        added = d - min(p, f)
        goals.append((f"doctor adds ≤ 300 ms on a failure path ({title})", added <= 300, f"{added:+.0f} ms"))
        w(f"| {title} | {adds} | {fmt_ms(d)} | {fmt_ms(p)} | {fmt_ms(f)} | {added:+.0f} ms {mark(added <= 300)} |")
    w("")
    w(f"{results.runs(f'fpath-doctor/{rows[0][0]}')} runs per command; every doctor run exits 1 naming the row's code, checked before timing.")
    if not HBA_PORT:
        w("The two pg_hba rows are skipped: they need TLS (openssl) for the TLS-only cluster.")
    w("")


def startup_group():
    cmds = [
        Cmd("version/aksara", f"{AKSARA} --version", 0, "aksara"),
        Cmd("version/psql", f"{PSQL} --version", 0, "psql"),
        Cmd("version/pg_isready", f"{PG_ISREADY} --version", 0, "pg_isready"),
    ]
    return Group("startup", cmds, runs=5, warmup=1)


def noserver_group():
    # No PG* variables, an empty HOME and no .env: discovery probes only the usual places.
    cmds = [
        Cmd("noserver/aksara", f"{AKSARA} dbsetup --non-interactive --db-name benchprobe", 1, "no PostgreSQL server answers"),
        Cmd("noserver/pg_isready", f"{PG_ISREADY}", 2, "no response"),
    ]
    return Group("noserver", cmds, runs=3, warmup=1, cwd=f"{WORK}/empty")


def run_env(group):
    env = dict(os.environ)
    env.update(group.env)
    return env


def run_shell(command, group):
    return subprocess.run(
        command if group.shell else shlex.split(command),
        shell=group.shell,
        cwd=group.cwd,
        env=run_env(group),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


def validate(group, problems):
    for c in group.cmds:
        if c.prepare:
            subprocess.run(c.prepare, shell=True, cwd=group.cwd, env=run_env(group))
        r = run_shell(c.command, group)
        ok = r.returncode == c.expect and all(t in r.stdout for t in c.text)
        if ok and c.after and not c.after[1]():
            ok = False
        if ok and c.judge and not c.judge[1](r.stdout):
            ok = False
        if not ok:
            problems.append(
                f"`{c.name}` did not behave as its row assumes (exit {r.returncode}, expected {c.expect}"
                f"{', output with ' + repr(c.text) if c.text else ''}):\n    $ {c.command}\n"
                + "\n".join("    " + line for line in r.stdout.strip().splitlines()[-12:])
            )


def time_with_hyperfine(group, order, rnd):
    path = f"{WORK}/hf-{group.gid}-{rnd}.json"
    args = [HYPERFINE, "--style", "none", "--export-json", path, "--runs", str(group.runs), "--warmup", str(group.warmup), "-i"]
    if not group.shell:
        args.append("-N")
    if any(c.prepare for c in order):
        for c in order:
            args += ["--prepare", c.prepare or "true"]
    for c in order:
        args += ["-n", c.name, c.command]
    with open(f"{WORK}/hyperfine.log", "a") as logf:
        r = subprocess.run(args, cwd=group.cwd, env=run_env(group), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    if r.returncode != 0:
        raise RuntimeError(f"hyperfine failed on group {group.gid} (see {WORK}/hyperfine.log)")
    with open(path) as f:
        data = json.load(f)
    return {res["command"]: res["times"] for res in data["results"]}


def shell_overhead(group):
    """What hyperfine subtracts in shell mode: the median start-up of `sh -c ''`."""
    if not group.shell:
        return 0.0
    times = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run("", shell=True, cwd=group.cwd)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def time_with_loop(group, order, overhead):
    """The fallback: A B C A B C ..., each run timed here."""
    times = {c.name: [] for c in order}
    for i in range(group.warmup + group.runs):
        for c in order:
            if c.prepare:
                subprocess.run(c.prepare, shell=True, cwd=group.cwd, env=run_env(group))
            argv = c.command if group.shell else shlex.split(c.command)
            t = time.perf_counter()
            subprocess.run(argv, shell=group.shell, cwd=group.cwd, env=run_env(group),
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - t
            if i >= group.warmup:
                times[c.name].append(max(elapsed - overhead, 0.0))
    return times


class Results:
    def __init__(self):
        self.samples = {}  # name -> all run times (s)
        self.rounds = {}  # name -> per-round medians (s)

    def add(self, times):
        for name, ts in times.items():
            self.samples.setdefault(name, []).extend(ts)
            self.rounds.setdefault(name, []).append(statistics.median(ts))

    def has(self, name):
        return name in self.samples

    def median_ms(self, name):
        return statistics.median(self.samples[name]) * 1000

    def runs(self, name):
        return len(self.samples[name])

    def ratio(self, a, b):
        pairs = [x / y for x, y in zip(self.rounds[a], self.rounds[b]) if y > 0]
        return statistics.median(pairs)


def measure(group, results):
    overhead = 0.0 if HYPERFINE else shell_overhead(group)
    n = len(group.cmds)
    for rnd in range(group.rounds):
        shift = rnd % n
        order = group.cmds[shift:] + group.cmds[:shift]
        times = time_with_hyperfine(group, order, rnd) if HYPERFINE else time_with_loop(group, order, overhead)
        results.add(times)


def peak_rss_kb(command, env, runs=5):
    """Peak resident set size (VmHWM at exit) of a command, median of `runs` runs."""
    values = []
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    for _ in range(runs):
        if gnu_time:
            r = subprocess.run([gnu_time, "-f", "maxrss=%M"] + shlex.split(command), env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               errors="replace")
            lines = [ln for ln in r.stderr.splitlines() if ln.startswith("maxrss=")]
            if lines:
                values.append(int(lines[-1].split("=")[1]))
                continue
        # Without GNU time: the kernel's rusage of the waited-for child.
        p = subprocess.Popen(shlex.split(command), env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(p.pid, 0)
        p.returncode = 0
        values.append(usage.ru_maxrss)
    return statistics.median(values), ("/usr/bin/time -f %M" if gnu_time else "wait4() ru_maxrss")


def huge_env_file_refusal(env):
    """`aksara doctor` on a 100 MB .env (a URL on line 1, then comments): it must refuse at once
    with a clear error, without reading the file (issue 16). Returns (peak RSS in kB, median
    wall time in ms over 5 runs); the refusal is checked first."""
    folder = tempfile.mkdtemp(prefix="aksara-bench-env-")
    path = os.path.join(folder, ".env")
    line = "# " + "x" * 98 + "\n"
    with open(path, "w") as f:
        f.write(f"DATABASE_URL={PLAIN_URL}\n")
        f.write(line * (100 * 1024 * 1024 // len(line)))
    command = f"{AKSARA} doctor --env-file {shlex.quote(path)}"
    r = subprocess.run(shlex.split(command), env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode == 0 or "more than the 1 MiB aksara reads" not in r.stderr:
        raise SystemExit(f"doctor on a 100 MB .env did not refuse it: exit {r.returncode}: {r.stderr[-500:]}")
    walls = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run(shlex.split(command), env=env, stdin=subprocess.DEVNULL, capture_output=True)
        walls.append((time.perf_counter() - t) * 1000)
    kb, _ = peak_rss_kb(command, env)
    shutil.rmtree(folder, ignore_errors=True)
    return kb, statistics.median(walls)


def hostile_error_server(message_bytes):
    """A stand-in server (issue 16) that answers every startup with a FATAL ErrorResponse whose
    message is `message_bytes` long, streamed; returns its port. Only this can send that:
    a real PostgreSQL's errors are a few kB."""
    import socket
    import struct
    import threading

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def read_packet(conn):
        head = b""
        while len(head) < 4:
            chunk = conn.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        (length,) = struct.unpack("!I", head)
        body = b""
        while len(body) < length - 4:
            chunk = conn.recv(length - 4 - len(body))
            if not chunk:
                return None
            body += chunk
        return body

    def serve(conn):
        try:
            body = read_packet(conn)
            if body is not None and struct.unpack("!I", body[:4])[0] == 80877103:
                conn.sendall(b"N")
                body = read_packet(conn)
            if body is None:
                return
            head = b"SFATAL\0VFATAL\0C28000\0M"
            conn.sendall(b"E" + struct.pack("!I", 4 + len(head) + message_bytes + 2) + head)
            chunk = b"A" * 65536
            left = message_bytes
            while left > 0:
                conn.sendall(chunk[:min(left, len(chunk))])
                left -= len(chunk)
            conn.sendall(b"\0\0")
        except OSError:
            pass  # the client stopped reading: what a bounded client does
        finally:
            conn.close()

    def accept():
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def capture(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def link_mode(path):
    """`PIE` or `not PIE`, as the dynamic section says (both binaries' build.rs decide it)."""
    dynamic = capture(["readelf", "-d", path])
    if not dynamic:
        return "link mode not read (no readelf)"
    flags = [line for line in dynamic.splitlines() if "FLAGS_1" in line]
    return "PIE" if any(" PIE" in line for line in flags) else "not PIE"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_ms(v):
    if v >= 1000:
        return f"{v / 1000:.3f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    return f"{v:.1f} ms"


def mark(ok):
    return "✓" if ok else "✗"


def fmt_ratio(ratio, goal):
    """Two decimals, or as many more (up to five) as it takes not to print the goal itself: a
    1.2502 shown as "1.25 ✗" against "goal ≤ 1.25" reads as a contradiction."""
    for places in range(2, 6):
        shown = f"{ratio:.{places}f}"
        if float(shown) != goal or ratio == goal:
            return shown
    return shown


def something_listens_on_default_places():
    found = []
    for d in ["/var/run/postgresql", "/run/postgresql", "/tmp", "/private/tmp", "/var/pgsql_socket"]:
        try:
            found += [f"{d}/{n}" for n in os.listdir(d) if n.startswith(".s.PGSQL.") and not n.endswith(".lock")]
        except OSError:
            pass
    import socket
    for port in (5432, 5433):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect(("127.0.0.1", port))
            found.append(f"127.0.0.1:{port}")
        except OSError:
            pass
        finally:
            s.close()
    return found


def main():
    started = time.time()
    load_before = os.getloadavg()
    transports, healthy = healthy_group()
    fpath_rows = failure_path_rows()
    groups = [healthy, pooler_group(), replica_group(), dbsetup_group(), fast_failure_group(), silent_group(), startup_group(), noserver_group()]
    groups.append(failure_path_group(fpath_rows))

    problems = []
    occupied = something_listens_on_default_places()
    if occupied:
        problems.append("the no-server case needs nothing listening on the usual places, but found: " + ", ".join(occupied))
        groups = [g for g in groups if g.gid != "noserver"]
    groups = [g for g in groups if g.cmds]

    log(f"checking that every command takes the path its row says ({sum(len(g.cmds) for g in groups)} commands)")
    for g in groups:
        validate(g, problems)
    if problems:
        for p in problems:
            log("cannot measure: " + p)
        return 1

    results = Results()
    timer = f"hyperfine {capture([HYPERFINE, '--version']).split()[-1]}" if HYPERFINE else "bench.py's own loop (A B C A B C per run)"
    for g in groups:
        log(f"timing {g.gid}: {len(g.cmds)} commands, {g.rounds} rounds x {g.runs} runs ({timer})")
        measure(g, results)

    env = dict(os.environ, **BASE_ENV)
    rss = {}
    rss_url = TCP_URL if TLS else PLAIN_URL
    for name, command in [
        ("aksara doctor", f"{AKSARA} doctor --url {shlex.quote(rss_url)}"),
        ("psql", f"{PSQL} -X -c 'select 1' {shlex.quote(rss_url)}"),
        ("sqlx floor", f"{FLOOR} {shlex.quote(rss_url)}"),
    ]:
        rss[name], rss_method = peak_rss_kb(command, env)
    huge_port = hostile_error_server(300 * 1024 * 1024)
    huge_url = f"postgresql://app:pw@127.0.0.1:{huge_port}/app?connect_timeout={CONNECT_TIMEOUT}"
    rss["doctor, 300 MB error"], _ = peak_rss_kb(f"{AKSARA} doctor --url {shlex.quote(huge_url)}", env)
    rss["psql, 300 MB error"], _ = peak_rss_kb(f"{PSQL} -X -c 'select 1' {shlex.quote(huge_url)}", env)
    rss["doctor, 100 MB .env"], rss["doctor, 100 MB .env, ms"] = huge_env_file_refusal(env)
    sizes = {"aksara": os.path.getsize(AKSARA), "sqlx floor": os.path.getsize(FLOOR)}
    if SQLX:
        sizes["sqlx-cli (installed)"] = os.path.getsize(os.path.realpath(SQLX))
    load_after = os.getloadavg()
    elapsed = time.time() - started

    # The report.
    goals = []
    lines = []
    w = lines.append
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = capture(["git", "rev-parse", "--short", "HEAD"])
    dirty = " (with uncommitted changes)" if capture(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md"]) else ""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count()
    w("# Benchmarks")
    w("")
    w("Written by `bench/run.sh` (issue 6); rerun it to refresh this file. Lower is better; every")
    w("number is a median. Slow numbers are reported, never fatal.")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| date | {now} |")
    w(f"| machine | {nproc} CPUs (`nproc`), {cpu_model()}, Linux {platform.release()} |")
    w(f"| load average (1 min) | {load_before[0]:.2f} before, {load_after[0]:.2f} after |")
    w(f"| aksara | {capture([AKSARA, '--version'])}, commit {commit}{dirty}, release build, {link_mode(AKSARA)}; the sqlx floor {link_mode(FLOOR)} |")
    w(f"| PostgreSQL | {capture([PGBIN + '/postgres', '--version'])}; clients from `{PGBIN}` |")
    w(f"| timer | {timer}; {ROUNDS} rounds (silent server: {min(ROUNDS, 3)}), the commands of a table rotated each round |")
    w(f"| run time | {elapsed:.0f} s (builds excluded) |")
    w("")
    w("The cluster is started by the script: initdb, `scram-sha-256` for every connection, a free")
    w("port on 127.0.0.1, a private socket directory, " + ("TLS on (self-signed RSA-2048 certificate, as Debian's clusters have)" if TLS else "TLS off (openssl missing)") + ",")
    w("`fsync=off` (disk flushes would swamp the client differences in `dbsetup`; both sides do the")
    w(f"same server work), data folders on {WORK_FS}: a disk's costs are not what is compared, and on")
    w("ext4 without a journal each file the server creates costs more the more files were deleted in")
    w("the minutes before, the bench's own included (bench/NOTES.md section 19). Clients run with `PGPASSWORD` set, an empty `HOME`, no other `PG*` variable.")
    w("The sqlx floor (`bench/floor`) connects, runs `SELECT 1` and closes, on the same sqlx version,")
    w("features and sqlx-core patch as aksara, with crates.io's sqlx-postgres (aksara's vendored copy")
    w("logs in with less work: bench/NOTES.md section 15), linked the same way (build.rs: not PIE on")
    w("Linux, bench/NOTES.md section 21). A ratio is the median over rounds of the two medians of each round.")
    w("")

    w("## `aksara doctor` on a healthy database")
    w("")
    w("| connection | aksara doctor | `psql -c 'select 1'` | sqlx floor | `pg_isready` | doctor ÷ psql (goal ≤ 1.0) | doctor ÷ floor (goal ≤ 1.25) |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for tid, title, _, _ in transports:
        d, p, f, i = (f"{k}/{tid}" for k in ("doctor", "psql", "floor", "pg_isready"))
        rp, rf = results.ratio(d, p), results.ratio(d, f)
        goals.append((f"doctor ≤ 1.0× psql ({title})", rp <= 1.0, f"{fmt_ratio(rp, 1.0)}×"))
        # Issue 6 asked for ≤ 2×, issue 11 for ≤ 1.25× (bench/NOTES.md sections 12, 14 and 15).
        goals.append((f"doctor ≤ 1.25× sqlx floor ({title})", rf <= 1.25, f"{fmt_ratio(rf, 1.25)}×"))
        w(f"| {title} | {fmt_ms(results.median_ms(d))} | {fmt_ms(results.median_ms(p))} | {fmt_ms(results.median_ms(f))} "
          f"| {fmt_ms(results.median_ms(i))} | {fmt_ratio(rp, 1.0)} {mark(rp <= 1.0)} | {fmt_ratio(rf, 1.25)} {mark(rf <= 1.25)} |")
    w("")
    w(f"{results.runs('doctor/tcp')} runs per command ({healthy.runs} per round: bench/NOTES.md section 28). The doctor does more than the others: URL and host checks,")
    w("login, server version and settings, connections in use, a create-table probe in a transaction")
    w("that is never committed, and the report; `pg_isready` does not log in.")
    w("")

    w("## `aksara doctor` through PgBouncer")
    w("")
    if PGBOUNCER_PORTS:
        w("| pool mode | aksara doctor | `psql -c 'select 1'` | doctor ÷ psql |")
        w("|---|---:|---:|---:|")
        for mode, _ in PGBOUNCER_PORTS:
            d, p = f"doctor/pgb-{mode}", f"psql/pgb-{mode}"
            w(f"| {mode} | {fmt_ms(results.median_ms(d))} | {fmt_ms(results.median_ms(p))} | {results.ratio(d, p):.2f} |")
        w("")
        w(f"{results.runs(f'doctor/pgb-{PGBOUNCER_PORTS[0][0]}')} runs per command, TCP without TLS to PgBouncer, which reaches the cluster over")
        w("its unix socket and logs in with the client's SCRAM proof. PgBouncer's first server login per")
        w("pool happens in the validation run, so the timed runs reuse pooled server connections. Through")
        w("a pooler doctor pays for telling it apart: its admin console, and in transaction mode a second")
        w("client for the mode probe (src/pooler.rs); a direct login pays nothing of this.")
    else:
        w("Not measured: pgbouncer is not installed (`apt-get install pgbouncer`).")
    w("")

    w("## `aksara doctor` on a primary + replica `.env`")
    w("")
    w("| `.env` | aksara doctor | two `psql -c 'select 1'`, one per server, in sequence | doctor ÷ the two psql |")
    w("|---|---:|---:|---:|")
    w(f"| `DATABASE_URL` (primary) + `DATABASE_REPLICA_URL` (streaming standby) | {fmt_ms(results.median_ms('replica/doctor'))} "
      f"| {fmt_ms(results.median_ms('replica/psql'))} | {results.ratio('replica/doctor', 'replica/psql'):.2f} |")
    w("")
    w(f"{results.runs('replica/doctor')} runs per command, sslmode=prefer over TCP to both. The standby is a `pg_basebackup -R`")
    w("of the cluster on its own port, streaming. Checked before timing: doctor checks both keys, the")
    w("primary can create tables, the replica key is read-only and a standby (its lag read: received")
    w("versus replayed WAL), and both pass. Both sides run in a shell (its start-up subtracted).")
    w("")

    w("## `aksara dbsetup --non-interactive`")
    w("")
    w("Role (SCRAM verifier) + database owned by it + verification as the new user + `.env`, against")
    w("`createuser` + `createdb -O` + `psql -c ALTER ROLE … PASSWORD -c GRANT` for the same objects")
    w("(no verification, no `.env`). Both log in over TCP as `postgres`; the role and database are")
    w("dropped before every run (not timed). " + ("The project folder is a git repository that ignores `.env`, as" if GIT_PROJECT else "git is missing, so the project folder is no repository"))
    if GIT_PROJECT:
        w("projects are (aksara asks git whether `.env` is ignored).")
    w("")
    w("| tool | median | ÷ createuser + createdb + psql (goal ≤ 1.0) |")
    w("|---|---:|---:|")
    ra = results.ratio("dbsetup/aksara", "dbsetup/peers")
    goals.append(("dbsetup ≤ 1.0× createuser + createdb + psql", ra <= 1.0, f"{fmt_ratio(ra, 1.0)}×"))
    w(f"| aksara dbsetup | {fmt_ms(results.median_ms('dbsetup/aksara'))} | {fmt_ratio(ra, 1.0)} {mark(ra <= 1.0)} |")
    w(f"| createuser + createdb + psql | {fmt_ms(results.median_ms('dbsetup/peers'))} | 1.00 |")
    if results.has("dbsetup/sqlx"):
        rs = results.ratio("dbsetup/sqlx", "dbsetup/peers")
        w(f"| `sqlx database create` (database only) | {fmt_ms(results.median_ms('dbsetup/sqlx'))} | {rs:.2f} |")
    else:
        w("| `sqlx database create` | skipped: sqlx-cli is not installed | |")
    w("")
    w(f"{results.runs('dbsetup/aksara')} runs per command; the shell that runs the three peer commands is subtracted.")
    w("")

    w("## Failure paths")
    w("")
    w(f"| failure | aksara doctor | `psql` | `pg_isready` | goal | met |")
    w("|---|---:|---:|---:|---|---|")
    v = results.median_ms("refused/doctor")
    goals.append(("refused port reported in ≤ 50 ms", v <= 50, fmt_ms(v)))
    w(f"| refused port (127.0.0.1, nothing listens) | {fmt_ms(v)} | {fmt_ms(results.median_ms('refused/psql'))} | {fmt_ms(results.median_ms('refused/pg_isready'))} | ≤ 50 ms | {mark(v <= 50)} |")
    v = results.median_ms("wrongpw/doctor")
    goals.append(("wrong password reported in ≤ 50 ms", v <= 50, fmt_ms(v)))
    w(f"| wrong password (scram) | {fmt_ms(v)} | {fmt_ms(results.median_ms('wrongpw/psql'))} | n/a (does not log in) | ≤ 50 ms | {mark(v <= 50)} |")
    v = results.median_ms("silent/doctor")
    limit = CONNECT_TIMEOUT * 1000 + 100
    goals.append((f"silent server reported in ≤ connect_timeout + 100 ms", v <= limit, f"{fmt_ms(v)} (+{v - CONNECT_TIMEOUT * 1000:.0f} ms)"))
    w(f"| silent server (accepts, never answers), `connect_timeout={CONNECT_TIMEOUT}` | {fmt_ms(v)} | {fmt_ms(results.median_ms('silent/psql'))} | {fmt_ms(results.median_ms('silent/pg_isready'))} (`-t {CONNECT_TIMEOUT}`) | ≤ {limit} ms | {mark(v <= limit)} |")
    w("")
    w(f"Each doctor run exits 1 naming the code (`connection-refused`, `auth-failed`, `connection-timeout`), checked before timing. {results.runs('refused/doctor')} runs per command ({results.runs('silent/doctor')} for the silent server).")
    w("")

    write_failure_path_table(w, results, goals, fpath_rows)

    w("## Server probing with nothing running")
    w("")
    if results.has("noserver/aksara"):
        v = results.median_ms("noserver/aksara")
        goals.append(("probing with nothing running ≤ 100 ms", v <= 100, fmt_ms(v)))
        w("| command | median | goal | met |")
        w("|---|---:|---|---|")
        w(f"| `aksara dbsetup --non-interactive --db-name x`: probes every usual socket folder and TCP localhost 5432/5433 at once, fails with `no PostgreSQL server answers` | {fmt_ms(v)} | ≤ 100 ms | {mark(v <= 100)} |")
        w(f"| `pg_isready` (its one default place), for scale | {fmt_ms(results.median_ms('noserver/pg_isready'))} | | |")
    else:
        w("Not measured: " + ", ".join(occupied) + " answered.")
    w("")

    w("## Start-up, size, memory")
    w("")
    w("| measure | aksara | others | goal | met |")
    w("|---|---:|---|---|---|")
    v = results.median_ms("version/aksara")
    w(f"| process start (`--version`) | {fmt_ms(v)} | psql {fmt_ms(results.median_ms('version/psql'))}, pg_isready {fmt_ms(results.median_ms('version/pg_isready'))} | | |")
    size = sizes["aksara"]
    goals.append(("release binary ≤ 8 MB", size <= 8_000_000, f"{size / 1e6:.2f} MB"))
    others = ", ".join(f"{k} {s / 1e6:.2f} MB" for k, s in sizes.items() if k != "aksara")
    w(f"| release binary, stripped | {size / 1e6:.2f} MB ({size:,} bytes) | {others}; sqlx-cli 7.95 MB (issue) | ≤ 8 MB | {mark(size <= 8_000_000)} |")
    v = rss["aksara doctor"]
    goals.append(("peak RSS of a doctor run ≤ 10 MB", v <= 10_000, f"{v / 1000:.1f} MB"))
    w(f"| peak RSS, `doctor` over TCP{' with TLS' if TLS else ''} | {v / 1000:.1f} MB | psql {rss['psql'] / 1000:.1f} MB, sqlx floor {rss['sqlx floor'] / 1000:.1f} MB | ≤ 10 MB | {mark(v <= 10_000)} |")
    v = rss["doctor, 300 MB error"]
    goals.append(("peak RSS of doctor against a 300 MB error message ≤ 20 MB", v <= 20_000, f"{v / 1000:.1f} MB"))
    w(f"| peak RSS, `doctor` against a server sending a 300 MB error (stand-in server) | {v / 1000:.1f} MB | psql {rss['psql, 300 MB error'] / 1000:.1f} MB | ≤ 20 MB | {mark(v <= 20_000)} |")
    v, took = rss["doctor, 100 MB .env"], rss["doctor, 100 MB .env, ms"]
    ok = v <= 20_000 and took < 1000
    goals.append(("doctor on a 100 MB .env: refused in < 1 s within 20 MB", ok, f"{took:.1f} ms, {v / 1000:.1f} MB"))
    w(f"| `doctor` on a 100 MB `.env`: refused (\"more than the 1 MiB aksara reads\"), wall time and peak RSS | {took:.1f} ms, {v / 1000:.1f} MB | | < 1 s, ≤ 20 MB | {mark(ok)} |")
    w("")
    w(f"Peak RSS: median of 5 runs, {rss_method} (kB, reported as MB = 1000 kB).")
    w("")

    w("## Goals")
    w("")
    for text, ok, value in goals:
        w(f"- {mark(ok)} {text}: {value}")
    w("")

    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    log(f"wrote {OUT} in {elapsed:.0f} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
