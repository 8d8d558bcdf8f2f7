// Connect with node-postgres (pg) and print each outcome as one JSON line.
// The jobs come on standard input, one JSON object {"driver": "node-pg", "url": ...} per line,
// never from argv (the URLs hold passwords); each gets one line back, and the process runs
// until its input ends. Each URL is handed over as an application would:
// new Client({ connectionString: url }).
'use strict'

const { Client } = require('pg')

const QUERY =
  "select current_user::text as user, current_database()::text as database, current_setting('port') as port," +
  ' inet_server_addr() is null as socket,' +
  ' coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false) as ssl,' +
  " current_setting('search_path') as search_path, current_setting('application_name') as application_name"

async function run(url) {
  let client
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error_class: 'Timeout', error: 'no outcome within 30 s' }), 30000)
  })
  const attempt = (async () => {
    try {
      client = new Client({ connectionString: url })
      await client.connect()
      const row = (await client.query(QUERY)).rows[0]
      return { ok: true, ...row, port: Number(row.port) }
    } catch (error) {
      return { ok: false, error_class: error.constructor.name, error: String(error.message || error) }
    }
  })()
  // node-postgres can throw from a socket event (e.g. `ssl=require` as a string): that is this
  // job's outcome, not the end of the batch.
  let onCrash
  const crash = new Promise((resolve) => {
    onCrash = (error) => resolve({ ok: false, error_class: error.constructor.name, error: String(error.message || error) })
    process.once('uncaughtException', onCrash)
  })
  const result = await Promise.race([attempt, timeout, crash])
  process.removeListener('uncaughtException', onCrash)
  clearTimeout(timer)
  if (client) await client.end().catch(() => {})
  return result
}

async function main() {
  const lines = require('readline').createInterface({ input: process.stdin })
  for await (const line of lines) {
    const job = JSON.parse(line)
    process.stdout.write(JSON.stringify(await run(job.url)) + '\n')
  }
}

main()
