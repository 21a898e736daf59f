// Follows one /logs stream as a browser would, with the npm `eventsource` package: reconnects
// after every cut, sending the last `id:` as Last-Event-ID. Prints each event received as one
// JSON line on stdout; on `end`, closes and says on stderr how many connections it opened.
'use strict'
const EventSource = require('eventsource')

const es = new EventSource(process.argv[2], { headers: { Authorization: process.env.SSE_AUTHORIZATION } })
let opens = 0
es.onopen = () => { opens += 1 }
es.onerror = (err) => { process.stderr.write(`reconnecting after: ${err.status || err.message || 'end of stream'}\n`) }
const print = (kind, e) => process.stdout.write(JSON.stringify({ kind, id: e.lastEventId, data: JSON.parse(e.data) }) + '\n')
for (const kind of ['start', 'log', 'notice', 'interrupted']) es.addEventListener(kind, (e) => print(kind, e))
es.addEventListener('end', (e) => {
  print('end', e)
  es.close()
  process.stderr.write(`opens ${opens}\n`)
  process.exit(0)
})
