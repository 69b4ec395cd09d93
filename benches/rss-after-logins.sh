#!/bin/bash
# RSS of `netraven serve` idle, at the peak of 40 concurrent logins and 3 s after (docs/benchmarks.md).
# usage: benches/rss-after-logins.sh target/release/netraven PORT
BIN=$(realpath "$1"); PORT=$2
D=$(mktemp -d); cd "$D"
export NETRAVEN_ADMIN_PASSWORD=rss-Check-pw-123 NETRAVEN_API_LISTEN=127.0.0.1:$PORT
"$BIN" serve >serve.log 2>&1 &
PID=$!
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:$PORT/api/health >/dev/null && break; sleep 0.5; done
sleep 2
idle=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
python3 - $PORT <<'PY'
import sys, json, urllib.request
from concurrent.futures import ThreadPoolExecutor
port = sys.argv[1]
def login(_):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/token",
        data=json.dumps({"username": "admin", "password": "rss-Check-pw-123"}).encode(),
        headers={"content-type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=120).status
    except Exception as e:
        return getattr(e, "code", str(e))
with ThreadPoolExecutor(40) as ex:
    codes = list(ex.map(login, range(40)))
print("statuses:", {c: codes.count(c) for c in set(codes)})
PY
hwm=$(awk '/VmHWM/{print $2}' /proc/$PID/status)
sleep 3
after=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
echo "idle_kB=$idle peak_kB=$hwm after3s_kB=$after"
kill $PID; wait $PID 2>/dev/null
