"""Connect with real Python drivers and print each outcome as one JSON line.

The jobs come on standard input, one JSON object {"driver": ..., "url": ...} per line, never
from argv (the URLs hold passwords); the process answers each with one line and runs until its
input ends, so the suite pays Python's start-up (about a second with these imports) once per
test process. DRIVER is one of asyncpg,
asyncpg-pool, psycopg, sqlalchemy-asyncpg, sqlalchemy-psycopg. Each URL is handed to the
driver exactly as an application would: asyncpg.connect(url), asyncpg.create_pool(url),
psycopg.connect(url), create_async_engine(url) / create_engine(url).
"""

import asyncio
import json
import signal
import sys

QUERY = (
    "select current_user::text, current_database()::text, current_setting('port'),"
    " inet_server_addr() is null,"
    " coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false),"
    " current_setting('search_path'), current_setting('application_name')"
)


def outcome(row):
    user, database, port, socket, ssl, search_path, application_name = row
    return {
        "ok": True,
        "user": user,
        "database": database,
        "port": int(port),
        "socket": bool(socket),
        "ssl": bool(ssl),
        "search_path": search_path,
        "application_name": application_name,
    }


async def with_asyncpg(url):
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return outcome(await conn.fetchrow(QUERY))
    finally:
        await conn.close()


async def with_asyncpg_pool(url):
    import asyncpg

    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            return outcome(await conn.fetchrow(QUERY))
    finally:
        await pool.close()


def with_psycopg(url):
    import psycopg

    with psycopg.connect(url) as conn:
        return outcome(conn.execute(QUERY).fetchone())


async def with_sqlalchemy_asyncpg(url):
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return outcome((await conn.execute(text(QUERY))).one())
    finally:
        await engine.dispose()


def with_sqlalchemy_psycopg(url):
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return outcome(conn.execute(text(QUERY)).one())
    finally:
        engine.dispose()


def run(driver, url):
    runners = {
        "asyncpg": lambda: asyncio.run(with_asyncpg(url)),
        "asyncpg-pool": lambda: asyncio.run(with_asyncpg_pool(url)),
        "psycopg": lambda: with_psycopg(url),
        "sqlalchemy-asyncpg": lambda: asyncio.run(with_sqlalchemy_asyncpg(url)),
        "sqlalchemy-psycopg": lambda: with_sqlalchemy_psycopg(url),
    }
    # A driver that hangs is a failure of its own, reported, not a stuck suite.
    signal.alarm(30)
    try:
        return runners[driver]()
    except BaseException as error:  # noqa: BLE001 - every failure is the outcome
        return {"ok": False, "error_class": type(error).__name__, "error": str(error)}
    finally:
        signal.alarm(0)


def main():
    for line in sys.stdin:
        job = json.loads(line)
        print(json.dumps(run(job["driver"], job["url"])), flush=True)


main()
