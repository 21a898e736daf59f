"""Run logs, the reader → one record type → writer split of tkn's `pkg/log`.

- Reading: `container` (one container's log through breaks; knows no runs), with `body` (the
  chunked HTTP body in large reads) and `lines` (whole lines, the cursor's timestamp); `attempt`
  (one pod's step containers in spec order, masked); `run_reader` (`RunFollower`: the run as an
  ordered stream of events); `notices` (lines for tasks without logs); `options`.
- The record: `events` (the typed event union) carrying `cursor` (the one cursor type).
- Masking: `masking` (the masker), `secret_values` (which Secret values a pod can see).
- Writing: `writers` (text, NDJSON); `tracker` and `tokens` (what went out, as a resume token).
"""
