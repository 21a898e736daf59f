#!/bin/sh
# tekton-logs.sh: follow a Tekton PipelineRun's logs through tekton-pipeline-listener, across
# every cut (platform timeouts, listener restarts, dropped connections), printing each log line
# exactly once, then exit with the run's outcome, like `tkn pipelinerun logs -f` + `tkn … -E`.
#
#   LISTENER_URL=https://listener.example.com LISTENER_CREDS=user:password \
#     sh tekton-logs.sh <run> | <namespace>/<run>
#
# Exit status: 0 succeeded, 1 failed / cancelled / timed out, 2 unknown (not found, refused,
# gave up after retries).
#
# Needs only a POSIX sh (busybox ash, dash) and curl (>= 7.75): it runs in `alpine/curl`.
# Credentials go to curl as a config on its stdin, never on a command line (`ps` shows them).
#
# Environment:
#   LISTENER_URL            the listener's base URL (required)
#   LISTENER_TOKEN          a bearer token, e.g. the job's OIDC token (GitLab CI `id_tokens`);
#                           used instead of LISTENER_CREDS when set
#   LISTENER_AUDIENCE       in GitHub Actions (`permissions: id-token: write`) without
#                           LISTENER_TOKEN: a fresh OIDC token for this audience is requested for
#                           every request (default: LISTENER_URL)
#   LISTENER_CREDS          user:password for HTTP Basic auth (when no token is at hand)
#   TEKTON_LOGS_WAIT        seconds to wait for the run to appear (default 120)
#   TEKTON_LOGS_STATUS_WAIT seconds /status may wait for the run to finish (default 60)
#   TEKTON_LOGS_QUERY       extra /logs options, e.g. `task=build&timestamps=true`
#   TEKTON_LOGS_RETRIES     attempts in a row without progress before giving up (default 30)
#   TEKTON_LOGS_MAX_BACKOFF longest pause between attempts, seconds (default 30)
#   TEKTON_LOGS_CURL        curl command (default curl), e.g. `curl --cacert /ca.pem`
#   TEKTON_LOGS_FORMAT      text, gitlab or github; default: gitlab under GitLab CI (GITLAB_CI),
#                           github under GitHub Actions (GITHUB_ACTIONS), else text
#
# Under GitLab CI each task and step is a collapsible section with its duration; under GitHub
# Actions each step is a group, failed steps are `::error` annotations. Every format ends a failed
# run with the failure digest, just before the final `PipelineRun …` line (the one that ends the
# loop below); its lines are indented or start with `Failure digest:`, so it is printed as text.
#
# How it resumes: it asks for `cursors=true` text, where every line is `<cursor> <text>`. The
# cursor is either a full resume token `<stable>.<active>` or `.<active>`, which continues the
# stable part last seen. After any cut, the next request sends the cursor of the last complete
# line (header `Last-Event-ID`), and the listener continues exactly after that line.

set -u

me=tekton-logs
CR=$(printf '\r')
US=$(printf '\037')

usage() {
	echo "usage: LISTENER_URL=… LISTENER_CREDS=user:pass $0 <run> | <namespace>/<run>" >&2
	exit 2
}
[ $# -eq 1 ] || usage
run=$1
case $run in '' | */*/* | -*) usage ;; esac
url=${LISTENER_URL:-}
[ -n "$url" ] || {
	echo "$me: LISTENER_URL is not set" >&2
	exit 2
}
url=${url%/}
wait=${TEKTON_LOGS_WAIT:-120}
status_wait=${TEKTON_LOGS_STATUS_WAIT:-60}
extra=${TEKTON_LOGS_QUERY:-}
[ -n "$extra" ] && extra="&${extra#[?&]}"
tries=${TEKTON_LOGS_RETRIES:-30}
max_backoff=${TEKTON_LOGS_MAX_BACKOFF:-30}
curl_cmd=${TEKTON_LOGS_CURL:-curl}
format=${TEKTON_LOGS_FORMAT:-}
if [ -z "$format" ]; then
	if [ "${GITLAB_CI:-}" = true ]; then
		format=gitlab
	elif [ "${GITHUB_ACTIONS:-}" = true ]; then
		format=github
	else
		format=text
	fi
fi
case $format in
text | gitlab) ;;
github)
	# One `::stop-commands::` token for every stream of this job: the step's output is never read
	# as workflow commands, also across cuts (see the listener's README).
	stop=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	format="github&stop_commands=$stop"
	;;
*)
	echo "$me: TEKTON_LOGS_FORMAT must be text, gitlab or github" >&2
	exit 2
	;;
esac

# `\` and `"` escaped for a quoted curl config value.
quote() {
	rest=$1 out=
	while [ -n "$rest" ]; do
		c=${rest%"${rest#?}"}
		rest=${rest#?}
		case $c in \\ | \") out="$out\\$c" ;; *) out="$out$c" ;; esac
	done
	printf '%s' "$out"
}

# The job's OIDC token: LISTENER_TOKEN, or a fresh one from GitHub Actions (they expire quickly).
job_token() {
	if [ -n "${LISTENER_TOKEN:-}" ]; then
		printf '%s' "$LISTENER_TOKEN"
	elif [ -n "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] && [ -n "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
		printf 'header = "Authorization: Bearer %s"\nconnect-timeout = 10\n' "$(quote "$ACTIONS_ID_TOKEN_REQUEST_TOKEN")" |
			$curl_cmd -sf -K - -G --data-urlencode "audience=${LISTENER_AUDIENCE:-$url}" "$ACTIONS_ID_TOKEN_REQUEST_URL" |
			sed -n 's/.*"value"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
	fi
}

# curl's config, read from stdin (-K -): credentials and the resume token stay off argv.
config() {
	bearer=$(job_token)
	if [ -n "$bearer" ]; then
		printf 'header = "Authorization: Bearer %s"\n' "$(quote "$bearer")"
	elif [ -n "${LISTENER_CREDS:-}" ]; then
		printf 'user = "%s"\n' "$(quote "$LISTENER_CREDS")"
	fi
	[ -n "${1:-}" ] && printf 'header = "Last-Event-ID: %s"\n' "$1"
	printf 'connect-timeout = 10\n'
	return 0
}

# Reads one `cursors=true` response on stdin (plus curl's write-out line, which starts with
# \037). Prints log text on stdout, and on fd 3 one line:
# `<http status> <curl exit code> <finished 0|1> <lines> <last cursor>`.
parse() {
	token=$1
	stable=${token%%.*}
	finished=0 status=000 code=0 lines=0 error=
	while IFS= read -r line; do
		case $line in
		*"${US}curl "*)
			# curl's write-out: after the body, glued to a line cut in the middle (dropped).
			tail=${line##*"${US}curl "}
			status=${tail%% *}
			code=${tail#* }
			continue
			;;
		esac
		# Heartbeats are carriage returns at line starts; log lines never start with one.
		line=${line#"${line%%[!$CR]*}"}
		case $line in
		'') continue ;;
		'{'*)
			error=$line # a JSON error body
			continue
			;;
		esac
		cursor=${line%% *}
		text=${line#* }
		case $cursor in
		.*) cursor=$stable$cursor ;;
		?*.*) stable=${cursor%%.*} ;;
		*) continue ;;
		esac
		case $text in
		'[stream interrupted] '*) printf '%s: %s\n' "$me" "${text%%; continue with *}; resuming" >&2 ;;
		'PipelineRun '*)
			printf '%s\n' "$text"
			finished=1
			lines=$((lines + 1))
			;;
		*)
			printf '%s\n' "$text"
			lines=$((lines + 1))
			;;
		esac
		token=$cursor
	done
	[ -n "$error" ] && printf '%s: %s\n' "$me" "$error" >&2
	printf '%s %s %s %s %s\n' "$status" "$code" "$finished" "$lines" "$token" >&3
}

exec 4>&1
token=
fails=0
backoff=1
while :; do
	state=$(config "$token" |
		$curl_cmd -s -N -K - --speed-limit 1 --speed-time 90 \
			-w "${US}curl %{http_code} %{exitcode}\n" \
			"$url/logs/$run?cursors=true&format=$format&wait=$wait$extra" |
		parse "$token" 3>&1 1>&4)
	# shellcheck disable=SC2086 # split the state line into its fields
	set -- $state
	status=${1:-000} code=${2:-0} finished=${3:-0} lines=${4:-0}
	[ -n "${5:-}" ] && token=$5
	[ "$finished" = 1 ] && break
	case $status in
	200 | 000 | 408 | 429 | 5??) ;; # cut, unreachable, busy: resume / retry
	404)
		echo "$me: PipelineRun $run not found" >&2
		exit 2
		;;
	*)
		echo "$me: the listener refused the request (HTTP $status)" >&2
		exit 2
		;;
	esac
	if [ "$lines" -gt 0 ]; then
		fails=0 backoff=1
		continue # progress, then a cut: continue at once
	fi
	fails=$((fails + 1))
	if [ "$fails" -ge "$tries" ]; then
		echo "$me: giving up after $fails attempts without progress (HTTP $status, curl exit $code)" >&2
		exit 2
	fi
	echo "$me: no progress (HTTP $status, curl exit $code); retrying in ${backoff}s" >&2
	sleep "$backoff"
	backoff=$((backoff * 2))
	[ "$backoff" -gt "$max_backoff" ] && backoff=$max_backoff
done

# The logs are complete; the outcome comes from /status (200 succeeded, 422 failed).
fails=0
backoff=1
while :; do
	status=$(config | $curl_cmd -s -K - -o /dev/null -w '%{http_code}' "$url/status/$run?wait=$status_wait")
	case $status in
	200) exit 0 ;;
	422) exit 1 ;;
	000 | 409 | 429 | 5??) ;;
	*)
		echo "$me: /status answered HTTP $status" >&2
		exit 2
		;;
	esac
	fails=$((fails + 1))
	if [ "$fails" -ge "$tries" ]; then
		echo "$me: outcome unknown (HTTP $status)" >&2
		exit 2
	fi
	sleep "$backoff"
	backoff=$((backoff * 2))
	[ "$backoff" -gt "$max_backoff" ] && backoff=$max_backoff
done
