// The live page of one PipelineRun: follows /logs as server-sent events (the browser's
// EventSource reconnects with Last-Event-ID across cuts and scale-to-zero), one collapsible
// section per task with its state and duration, ANSI colours, a link to every line, and the
// failure digest on top once the run has ended.
'use strict'
;(() => {
  const app = document.getElementById('app')
  const state = document.getElementById('state')
  const digestBox = document.getElementById('digest')
  const tasks = new Map()

  const seconds = (ms) => (ms / 1000).toFixed(1) + 's'
  const slug = (text) => text.replace(/[^A-Za-z0-9_-]/g, '-')

  function task (name) {
    let t = tasks.get(name)
    if (t) return t
    const details = document.createElement('details')
    details.className = 'task'
    details.id = 'task-' + slug(name)
    details.dataset.state = 'running'
    details.open = true
    const summary = document.createElement('summary')
    const title = document.createElement('span')
    title.textContent = name
    const meta = document.createElement('span')
    meta.className = 'meta'
    summary.append(title, meta)
    const log = document.createElement('pre')
    log.className = 'log'
    details.append(summary, log)
    app.append(details)
    t = { name, details, meta, log, lines: 0, first: null, last: null }
    tasks.set(name, t)
    return t
  }

  function describe (t) {
    const span = t.first !== null && t.last !== null ? ' · ' + seconds(t.last - t.first) : ''
    t.meta.textContent = t.details.dataset.state + span + ' · ' + t.lines + ' lines'
  }

  // SGR colours and bold: ESC [ … m; anything else of the escape sequences is dropped.
  function ansi (text, into) {
    const parts = text.split(/\x1b\[([0-9;]*)m/)
    let classes = []
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        for (const code of part.split(';').map(Number)) {
          if (code === 0 || Number.isNaN(code)) classes = []
          else if (code === 1) classes.push('b')
          else if (code >= 30 && code <= 37) classes = classes.filter((c) => c === 'b').concat('c' + code)
          else if (code >= 90 && code <= 97) classes = classes.filter((c) => c === 'b').concat('c' + (code - 60))
        }
        return
      }
      if (!part) return
      const span = document.createElement('span')
      if (classes.length) span.className = classes.join(' ')
      span.textContent = part.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      into.append(span)
    })
  }

  function addLine (t, kind, text, step) {
    t.lines += 1
    const line = document.createElement('span')
    line.className = 'line ' + kind
    line.id = 'L-' + slug(t.name) + '-' + t.lines
    const link = document.createElement('a')
    link.className = 'n'
    link.href = '#' + line.id
    link.textContent = String(t.lines)
    line.append(link)
    if (step) {
      const s = document.createElement('span')
      s.className = 'step'
      s.textContent = '[' + step + '] '
      line.append(s)
    }
    ansi(text, line)
    t.log.append(line)
    describe(t)
  }

  function showDigest (name, digest) {
    const out = ['Failure digest: PipelineRun ' + name + ' ' + digest.outcome, '  ' + digest.reason + ': ' + digest.message]
    for (const t of digest.failedTasks || []) {
      out.push('  FAILED task ' + t.task + ': ' + t.reason + ': ' + t.message)
      for (const s of t.steps || []) {
        // As the text formats write it (shared/logs/formats/digest_text.py): a step that never
        // started has no exit code, and a reason only when Tekton gave one.
        const code = s.exitCode === null || s.exitCode === undefined ? 'never started' : 'exit code ' + s.exitCode
        out.push('    step ' + s.step + ': ' + code + (s.reason ? ' (' + s.reason + ')' : ''))
        for (const l of s.lastLines || []) out.push('      | ' + l)
      }
    }
    for (const s of digest.skippedTasks || []) out.push('  SKIPPED task ' + s.task + ': ' + s.reason)
    digestBox.textContent = out.join('\n')
    digestBox.hidden = false
  }

  const es = new EventSource(app.dataset.stream)
  es.addEventListener('open', () => {
    if (state.dataset.state === 'connecting') {
      state.dataset.state = 'running'
      state.textContent = 'running'
    }
  })
  es.addEventListener('log', (e) => {
    const d = JSON.parse(e.data)
    const t = task(d.task)
    const when = d.timestamp ? Date.parse(d.timestamp) : null
    if (when !== null) {
      if (t.first === null) t.first = when
      t.last = when
    }
    addLine(t, 'out', d.line, d.step)
  })
  es.addEventListener('notice', (e) => {
    const d = JSON.parse(e.data)
    const t = task(d.task || '(run)')
    if (d.kind === 'skipped') t.details.dataset.state = 'skipped'
    addLine(t, 'notice', d.message, d.step)
  })
  es.addEventListener('end', (e) => {
    es.close()
    const status = JSON.parse(e.data).status
    for (const item of status.tasks || []) {
      if (item.outcome && tasks.has(item.name)) {
        const t = tasks.get(item.name)
        t.details.dataset.state = item.outcome
        t.details.open = item.outcome !== 'succeeded'
        describe(t)
      }
    }
    if (status.digest) showDigest(status.name, status.digest)
    state.dataset.state = status.outcome
    state.textContent = status.outcome + ' — ' + status.reason + ': ' + status.message
    document.body.dataset.done = 'true'
  })
})()
