#!/usr/bin/env bash
# Publishes a random walk on `metrics:demo`, one value a second, for the dashboard demo
# (clients/js/demo/dashboard.html), through the hub's HTTP API.
#
#   bash clients/js/demo/publish-series.sh [COUNT]
#
# COUNT: how many values to send, one attempt each (default: until Ctrl-C).
# Environment: HUB (default http://127.0.0.1:8000), CHANNEL (default metrics:demo),
# INTERVAL (seconds between values, default 1), API_KEY (sent as `Authorization: apikey
# KEY` when set: the demo configuration needs none, a configured hub does).
set -euo pipefail

count="${1:-0}"
if ! [[ "${count}" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [COUNT]   (COUNT: a whole number; none or 0 = until Ctrl-C)" >&2
    exit 2
fi
hub="${HUB:-http://127.0.0.1:8000}"
channel="${CHANNEL:-metrics:demo}"
interval="${INTERVAL:-1}"
headers=()
if [[ -n "${API_KEY:-}" ]]; then
    headers=(-H "Authorization: apikey ${API_KEY}")
fi

sent=0
tries=0
trap 'echo; echo "stopped after ${sent} values"; exit 0' INT TERM

value=50
while (( count == 0 || tries < count )); do
    tries=$(( tries + 1 ))
    # A random walk between 0 and 100, steps of -5..5.
    value=$(( value + RANDOM % 11 - 5 ))
    (( value < 0 )) && value=0
    (( value > 100 )) && value=100
    body="{\"channel\":\"${channel}\",\"payload\":{\"value\":${value}}}"
    if curl -fsS --max-time 5 -X POST "${headers[@]}" -d "${body}" "${hub}/api/publish" >/dev/null; then
        sent=$(( sent + 1 ))
        echo "${sent} ${channel} ${value}"
    else
        echo "publish to ${hub} failed" >&2
    fi
    if (( count == 0 || tries < count )); then
        sleep "${interval}"
    fi
done
echo "sent ${sent} of ${tries} values"
(( sent > 0 || tries == 0 ))
