#!/bin/bash
# Login flood with huge user names against `netraven serve` (issue #10, docs/security.md):
# 1,000 × POST /api/auth/token with a 1 MiB user name (body over the 1 MiB limit: 413), then
# 1,000 × a user name just under the limit (the body is read and parsed: 422 before any
# hashing), then 1,000 × the same as a form. Prints the status counts, the max and p99 latency
# of each batch, and the server's RSS before, after and at its peak (VmHWM).
# usage: benches/login-flood.sh target/release/netraven PORT
set -euo pipefail
BIN=$(realpath "$1"); PORT=$2
D=$(mktemp -d); cd "$D"
export NETRAVEN_ADMIN_PASSWORD=flood-Check-pw-123 NETRAVEN_API_LISTEN=127.0.0.1:$PORT NETRAVEN_DATA_DIR=$D/data
"$BIN" serve >serve.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$D"' EXIT
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:$PORT/api/health >/dev/null && break; sleep 0.5; done
sleep 2
rss() { awk "/$1/{print \$2}" /proc/$PID/status; }
echo "rss_before_kB=$(rss VmRSS)"
python3 - "$PORT" "$PID" <<'PY'
import http.client, json, sys, time
port, pid = sys.argv[1], sys.argv[2]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"):
            return int(l.split()[1])
def batch(name, body, ctype, n=1000):
    lat, codes = [], {}
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    for _ in range(n):
        t = time.perf_counter()
        try:
            conn.request("POST", "/api/auth/token", body=body, headers={"content-type": ctype})
            r = conn.getresponse(); r.read(); code = r.status
            if r.getheader("connection", "").lower() == "close":
                conn.close(); conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        except Exception as e:
            code = type(e).__name__
            conn.close(); conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        lat.append((time.perf_counter() - t) * 1000)
        codes[code] = codes.get(code, 0) + 1
    lat.sort()
    print(f"{name}: statuses {codes} max_ms={lat[-1]:.1f} p99_ms={lat[int(len(lat)*0.99)-1]:.1f} median_ms={lat[len(lat)//2]:.1f} rss_kB={rss()}")
mib = 1024 * 1024
batch("1MiB-username-json", json.dumps({"username": "a" * mib, "password": "x"}).encode(), "application/json")
batch("under-limit-username-json", json.dumps({"username": "a" * (mib - 64), "password": "x"}).encode(), "application/json")
batch("under-limit-username-form", ("username=" + "a" * (mib - 64) + "&password=x").encode(), "application/x-www-form-urlencoded")
PY
sleep 1
echo "rss_after_kB=$(rss VmRSS) rss_peak_kB=$(rss VmHWM)"
