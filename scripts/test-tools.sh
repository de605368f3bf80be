#!/bin/sh
# The Debian packages the test suite drives, installed when missing: chromium (the browser
# tests, through Playwright with its executable; Playwright's own download is never used)
# and prometheus (promtool and a real server, for the alert rules). Quiet and idempotent:
# when both are on PATH nothing is asked of apt. apt-get runs as root, or through sudo
# (never waiting for a password); when neither can, one line says what to run, and the
# exit status is 1. A package that installs without its command also fails here, loudly.
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
  as_root="sudo -n"
else
  echo "error: the tests drive Debian's$missing; install it as root: apt-get install -y$missing" >&2
  exit 1
fi
log="${TMPDIR:-/tmp}/warden-test-tools.log"
echo "installing Debian's$missing for the tests (the first time only; a few minutes; log: $log)" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # $as_root and $missing are word lists
if ! { $as_root apt-get update -qq && $as_root apt-get install -y -qq $missing; } >"$log" 2>&1; then
  echo "error: apt-get could not install$missing (see $log)" >&2
  exit 1
fi
for tool in chromium promtool; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is still missing after apt-get install (see $log)" >&2; exit 1; }
done
