#!/usr/bin/env bash
# Screenshot a built book page with headless Chromium, fully offline.
# Usage: tools/screenshot.sh PAGE.html OUT.png [WIDTHxHEIGHT]
#   PAGE.html: path to a built page, e.g. book/_build/html/reports/x.html
#   WIDTHxHEIGHT: window size, default 1400x1000
# Env: CHROMIUM (default: chromium, chromium-browser or google-chrome on PATH),
#      VIRTUAL_TIME_MS (default 5000; time given to MathJax/JS before capture).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 PAGE.html OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
page=$1 out=$2 size=${3:-1400x1000}
[[ -f $page ]] || { echo "$0: no such page: $page" >&2; exit 2; }
browser=${CHROMIUM:-}
if [[ -z $browser ]]; then
  for b in chromium chromium-browser google-chrome; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
  done
fi
[[ -n $browser ]] || { echo "$0: chromium not found (apt-get install -y chromium)" >&2; exit 2; }

page_abs=$(realpath "$page")
mkdir -p "$(dirname "$out")"
out_abs=$(realpath -m "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-dev-shm-usage --hide-scrollbars \
  --user-data-dir="$profile" --window-size="${size/x/,}" \
  --virtual-time-budget="${VIRTUAL_TIME_MS:-5000}" \
  --screenshot="$out_abs" "file://$page_abs" >/dev/null 2>&1 || true

if [[ ! -s $out_abs ]]; then
  echo "$0: screenshot failed for $page" >&2
  exit 1
fi
echo "$out_abs"
