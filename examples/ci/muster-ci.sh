#!/bin/sh
# Run a Muster plan from a CI job with nothing but curl, jq and GNU coreutils (no Muster install):
# upload the plan's folder, start the build, print its logs as they come, download its outputs,
# and exit 0 only when the build succeeded. docs/api.md walks through it.
#
#   MUSTER_URL=https://muster.example.com:8000 MUSTER_USER=ci MUSTER_PASSWORD=... \
#     sh muster-ci.sh path/to/muster.yml [OUTPUT_DIR]
#
# MUSTER_TOKEN (a token from POST /api/v1/login) instead of MUSTER_USER and MUSTER_PASSWORD uses
# that token and keeps it; otherwise the script logs in and logs out at the end. For a
# coordinator's self-signed certificate set CURL_CA_BUNDLE to its PEM file (curl reads it).
#
# What is sent: the files under the plan's folder that git would commit (tracked, or untracked
# and not ignored: `git ls-files --cached --others --exclude-standard`), or outside a git
# checkout every file but those in .git, node_modules and .muster; the plan's `inputs` pick from
# them. Sent files are readable by every user of the coordinator: keep credentials a CI step
# writes out of that folder, or ignored. Symlinks are not sent; names with a tab or a newline are
# not supported. The outputs go to OUTPUT_DIR, the plan's folder by default, as `muster run`
# does, and as it does the script refuses (before writing any) an output path that is absolute,
# has a `.` or `..` or `.git` component, or would be written through a symlink or over a
# directory, checks each output's hash and gives it no mode bits above 0777.
#
# Exit status: 0 the build succeeded; 1 it failed or was cancelled; 2 the request was refused
# (a bad plan, a bad login, a coordinator that cannot be reached in 30 s, or one that stops
# answering: a request that moves no byte for MUSTER_CI_STALL seconds, 120 by default, is given
# up — this also covers the coordinator's own work on a request, such as checking a large plan,
# so keep it well above that). SIGINT or SIGTERM (the CI job cancelled) cancels the build.
set -eu

stall=${MUSTER_CI_STALL:-120}
case $stall in '' | *[!0-9]* | 0 | ???????*) echo "muster-ci: MUSTER_CI_STALL must be a whole number of seconds (1 to 999999)" >&2 && exit 2 ;; esac

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
  [ -z "$logout" ] || curl -sS --globoff --connect-timeout 30 --speed-limit 1 --speed-time "$stall" \
    -o /dev/null -X POST -H @"$work/auth" "$api/logout" || true
  rm -rf "$work"
}
trap finish EXIT
trap 'echo "muster-ci: stopped" >&2; [ -z "$id" ] || (call POST "/builds/$id/cancel" >/dev/null) || true; exit 1' INT TERM

# fetch FILE METHOD PATH [curl options]: the answer's body into FILE; on an HTTP error prints
# the API's error (code, message and a plan's problems) and exits 2. Secrets stay off the command
# line (other users of the CI machine see it): the token goes in a header file, the login in a
# body. Its variables start with _ (sh has no locals).
fetch() {
  _file=$1
  _method=$2
  _path=$3
  shift 3
  # Under 1 byte a second for $stall seconds (a coordinator that stopped answering): given up.
  _status=$(curl -sS --globoff --connect-timeout 30 --speed-limit 1 --speed-time "$stall" \
    -o "$_file" -w '%{http_code}' -X "$_method" -H @"$work/auth" "$@" "$api$_path") || {
    echo "muster-ci: $_method $_path: no answer" >&2
    exit 2
  }
  case $_status in
  2??) ;;
  *)
    echo "muster-ci: $_method $_path: HTTP $_status" >&2
    # The coordinator's words, each line prefixed (never a CI runner's command at a line's start).
    { jq -r '.error | "\(.code): \(.message)", (.details.problems[]? | "  \(.)")' "$_file" 2>/dev/null ||
      head -c 2000 "$_file"; } | sed 's/^/muster-ci:   /' >&2
    exit 2
    ;;
  esac
}

# call METHOD PATH [curl options]: as fetch, printing the body.
call() {
  fetch "$work/body" "$@"
  cat "$work/body"
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
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard -- . | tr '\0' '\n'
else
  find . \( -name .git -o -name node_modules -o -name .muster \) -prune -o -type f -print | sed 's|^\./||'
fi | LC_ALL=C sort -u | while IFS= read -r path; do
  # Regular files only (a symlink, or a tracked file deleted here, is not sent).
  [ -f "./$path" ] && [ ! -L "./$path" ] || continue
  printf '%s\t%s\t%s\t%s\n' "$(sha256sum <"./$path" | cut -c1-64)" "$(stat -c %s "./$path")" \
    "$((0$(stat -c %a "./$path") & 0777))" "$path"
done >"$work/files.tsv"
jq -R -s 'split("\n") | map(select(length > 0) | split("\t")
  | {sha256: .[0], size: (.[1] | tonumber), mode: (.[2] | tonumber), path: .[3]})' \
  "$work/files.tsv" >"$work/files.json"
jq '{hashes: [.[].sha256] | unique}' "$work/files.json" >"$work/hashes.json"
missing=$(call POST /blobs/missing -H 'content-type: application/json' --data-binary @"$work/hashes.json")
# One file per missing hash (one jq for all, not one per file).
printf '%s' "$missing" | jq -r --slurpfile files "$work/files.json" \
  '($files[0] | INDEX(.sha256)) as $by | .missing[] | [., $by[.].path] | @tsv' >"$work/missing"
while IFS="$(printf '\t')" read -r sha path; do
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
# While the build runs, its status is asked again every 100 pages of log; once it has ended, the
# log is read to its end (a page that does not move the position on). A coordinator can keep
# this waiting — as a build that never ends would: the CI job's own time limit bounds it.
after=0
while :; do
  build=$(call GET "/builds/$id")
  status=$(printf '%s' "$build" | jq -r .status)
  ended=''
  case $status in succeeded | failed | cancelled) ended=yes ;; esac
  pages=0
  while [ -n "$ended" ] || [ "$pages" -lt 100 ]; do
    pages=$((pages + 1))
    logs=$(call GET "/builds/$id/logs?after=$after&limit=1000")
    printf '%s' "$logs" |
      jq -j '.chunks[] | .task as $t | .text | rtrimstr("\n") | split("\n") | map("[\($t)] \(.)\n") | join("")'
    # A whole number of at most 15 digits, or the answer is refused (nothing else reaches a URL).
    next=$(printf '%s' "$logs" | jq -r '.next | numbers | select(. >= 0 and . < 1e15 and . == floor)')
    case $next in '' | *[!0-9]* | ????????????????*)
      echo "muster-ci: GET /builds/$id/logs: the answer has no log position" >&2
      exit 2
      ;;
    esac
    [ "$next" -gt "$after" ] || break
    after=$next
  done
  [ -z "$ended" ] || break
  sleep 2
done

# 4. The outputs: every path checked before any is written (as `muster run` does), each
# downloaded and checked against its hash, then all moved into OUTPUT_DIR.
printf '%s' "$build" | jq -r '.tasks[].outputs[] | [.sha256, .mode, .path] | @tsv' >"$work/outputs"
refuse() {
  echo "muster-ci: refusing output $1: $2; no output written" >&2
  exit 2
}
while IFS="$(printf '\t')" read -r sha mode path; do
  case "/$path/" in *//* | */../* | */./*) refuse "$path" 'not a plain relative path' ;; esac
  case "$(printf '%s' "/$path/" | tr 'A-Z' 'a-z')" in */.git/*) refuse "$path" 'inside .git' ;; esac
  case "$sha" in *[!0-9a-f]* | '') refuse "$path" 'not a sha256' ;; esac
  case "$mode" in *[!0-9]* | '') refuse "$path" 'not a mode' ;; esac
  # Never through a symlink already there, never over a directory.
  at=$out
  rest=$path
  while :; do
    at="$at/${rest%%/*}"
    [ ! -L "$at" ] || refuse "$path" "$at is a symlink"
    case "$rest" in */*) rest=${rest#*/} ;; *) break ;; esac
  done
  [ ! -d "$at" ] || refuse "$path" "$at is a directory"
done <"$work/outputs"
n=0
while IFS="$(printf '\t')" read -r sha mode path; do
  n=$((n + 1))
  fetch "$work/output.$n" GET "/blobs/$sha"
  [ "$(sha256sum <"$work/output.$n" | cut -c1-64)" = "$sha" ] || {
    echo "muster-ci: $path: hash mismatch; no output written" >&2
    exit 2
  }
  chmod "$(printf '%o' $((mode & 0777)))" "$work/output.$n"
done <"$work/outputs"
n=0
while IFS="$(printf '\t')" read -r sha mode path; do
  n=$((n + 1))
  mkdir -p "$out/$(dirname "$path")"
  mv -fT "$work/output.$n" "$out/$path"
done <"$work/outputs"

# 5. The exit status: the build's.
echo "muster-ci: build $id $status" >&2
printf '%s' "$build" |
  jq -r '.tasks[] | select(.status != "succeeded") | "  \(.name): \(.status)\(if .exitCode != null then " (exit \(.exitCode))" else "" end)\(if .error then ": \(.error)" else "" end)"' >&2
[ "$status" = succeeded ]
