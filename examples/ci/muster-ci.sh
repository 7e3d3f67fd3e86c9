#!/bin/sh
# Run a Muster plan from a CI job with nothing but curl, jq and sha256sum (no Muster install):
# upload the plan's folder, start the build, print its logs as they come, download its outputs,
# and exit 0 only when the build succeeded. docs/api.md walks through it.
#
#   MUSTER_URL=https://muster.example.com:8000 MUSTER_USER=ci MUSTER_PASSWORD=... \
#     sh muster-ci.sh path/to/muster.yml [OUTPUT_DIR]
#
# MUSTER_TOKEN (a token from POST /api/v1/login) instead of MUSTER_USER and MUSTER_PASSWORD uses
# that token and keeps it; otherwise the script logs in and logs out at the end. For a
# coordinator's self-signed certificate set CURL_CA_BUNDLE to its PEM file (curl reads it).
# Every file under the plan's folder but .git is sent (the plan's `inputs` pick from them; names
# with a tab or a newline are not supported); the
# outputs go to OUTPUT_DIR, the plan's folder by default, as `muster run` does.
#
# Exit status: 0 the build succeeded; 1 it failed or was cancelled; 2 the request was refused
# (a bad plan, a bad login, a coordinator that cannot be reached). SIGINT or SIGTERM (the CI job
# cancelled) cancels the build.
set -eu

plan=${1:?usage: muster-ci.sh PLAN [OUTPUT_DIR]}
api="${MUSTER_URL:?set MUSTER_URL, e.g. https://muster.example.com:8000}/api/v1"
dir=$(cd "$(dirname "$plan")" && pwd)
plan="$dir/$(basename "$plan")"
out=${2:-$dir}
mkdir -p "$out"
out=$(cd "$out" && pwd)
umask 077
work=$(mktemp -d)
id=''
token=${MUSTER_TOKEN:-}
logout=''

finish() {
  [ -z "$logout" ] || curl -sS -o /dev/null -X POST -H @"$work/auth" "$api/logout" || true
  rm -rf "$work"
}
trap finish EXIT
trap 'echo "muster-ci: stopped" >&2; [ -z "$id" ] || (call POST "/builds/$id/cancel" >/dev/null) || true; exit 1' INT TERM

# call METHOD PATH [curl options]: prints the answer's body; on an HTTP error prints the API's
# error (code, message and a plan's problems) and exits 2. Secrets stay off the command line
# (other users of the CI machine see it): the token goes in a header file, the login in a body.
# Its variables start with _ (sh has no locals).
call() {
  _method=$1
  _path=$2
  shift 2
  _status=$(curl -sS -o "$work/body" -w '%{http_code}' -X "$_method" -H @"$work/auth" "$@" "$api$_path") || {
    echo "muster-ci: $_method $_path: no answer" >&2
    exit 2
  }
  case $_status in
  2??) cat "$work/body" ;;
  *)
    echo "muster-ci: $_method $_path: HTTP $_status" >&2
    jq -r '.error | "\(.code): \(.message)", (.details.problems[]? | "  \(.)")' "$work/body" >&2 2>/dev/null ||
      cat "$work/body" >&2
    exit 2
    ;;
  esac
}

if [ -z "$token" ]; then
  : "${MUSTER_USER:?set MUSTER_TOKEN, or MUSTER_USER and MUSTER_PASSWORD}" "${MUSTER_PASSWORD:?set MUSTER_PASSWORD}"
  : >"$work/auth"
  jq -n '{user: env.MUSTER_USER, password: env.MUSTER_PASSWORD}' >"$work/login.json"
  login=$(call POST /login -H 'content-type: application/json' --data-binary @"$work/login.json")
  rm -f "$work/login.json"
  token=$(printf '%s' "$login" | jq -r .token)
  logout=yes
fi
printf 'authorization: Bearer %s\n' "$token" >"$work/auth"

# 1. Describe every file (path, sha256, size, mode) and upload the ones the coordinator lacks.
cd "$dir"
find . -type f ! -path './.git/*' | sed 's|^\./||' | LC_ALL=C sort | while IFS= read -r path; do
  printf '%s\t%s\t%s\t%s\n' "$(sha256sum <"$path" | cut -c1-64)" "$(stat -c %s "./$path")" \
    "$((0$(stat -c %a "./$path")))" "$path"
done >"$work/files.tsv"
jq -R -s 'split("\n") | map(select(length > 0) | split("\t")
  | {sha256: .[0], size: (.[1] | tonumber), mode: (.[2] | tonumber), path: .[3]})' \
  "$work/files.tsv" >"$work/files.json"
jq '{hashes: [.[].sha256] | unique}' "$work/files.json" >"$work/hashes.json"
missing=$(call POST /blobs/missing -H 'content-type: application/json' --data-binary @"$work/hashes.json")
printf '%s' "$missing" | jq -r '.missing[]' >"$work/missing"
while IFS= read -r sha; do
  path=$(jq -r --arg sha "$sha" 'first(.[] | select(.sha256 == $sha)) | .path' "$work/files.json")
  call PUT "/blobs/$sha" -H 'content-type: application/octet-stream' -T "./$path" >/dev/null
done <"$work/missing"
echo "muster-ci: $(jq length "$work/files.json") files, $(wc -l <"$work/missing") uploaded" >&2

# 2. Start the build: the plan's text and the files.
jq -n --rawfile plan "$plan" --slurpfile files "$work/files.json" '{plan: $plan, files: $files[0]}' \
  >"$work/build.json"
build=$(call POST /builds -H 'content-type: application/json' --data-binary @"$work/build.json")
id=$(printf '%s' "$build" | jq -r .id)
echo "muster-ci: build $id: ${MUSTER_URL%/}/builds/$id" >&2

# 3. Follow it: print new log lines ("[task] line"), until it has ended and its log is read.
after=0
while :; do
  build=$(call GET "/builds/$id")
  status=$(printf '%s' "$build" | jq -r .status)
  while :; do
    logs=$(call GET "/builds/$id/logs?after=$after&limit=1000")
    printf '%s' "$logs" |
      jq -j '.chunks[] | .task as $t | .text | rtrimstr("\n") | split("\n") | map("[\($t)] \(.)\n") | join("")'
    next=$(printf '%s' "$logs" | jq -r .next)
    [ "$next" != "$after" ] || break
    after=$next
  done
  case $status in succeeded | failed | cancelled) break ;; esac
  sleep 2
done

# 4. Download the outputs, checking each one's hash; refuse paths that leave OUTPUT_DIR.
printf '%s' "$build" | jq -r '.tasks[].outputs[] | [.sha256, .mode, .path] | @tsv' >"$work/outputs"
while IFS="$(printf '\t')" read -r sha mode path; do
  case "/$path/" in
  *//* | */../* | */./*)
    echo "muster-ci: refusing output path $path" >&2
    exit 2
    ;;
  esac
  mkdir -p "$out/$(dirname "$path")"
  call GET "/blobs/$sha" >"$work/blob"
  [ "$(sha256sum <"$work/blob" | cut -c1-64)" = "$sha" ] || {
    echo "muster-ci: $path: hash mismatch" >&2
    exit 2
  }
  mv -f "$work/blob" "$out/$path"
  chmod "$(printf '%o' "$mode")" "$out/$path"
done <"$work/outputs"

# 5. The exit status: the build's.
echo "muster-ci: build $id $status" >&2
printf '%s' "$build" |
  jq -r '.tasks[] | select(.status != "succeeded") | "  \(.name): \(.status)\(if .exitCode != null then " (exit \(.exitCode))" else "" end)\(if .error then ": \(.error)" else "" end)"' >&2
[ "$status" = succeeded ]
