#!/usr/bin/env bash
# Instructions per request that a load server spends, counted by callgrind over N
# keep-alive requests that repeat one token (the cache-hit path). Instruction counts are
# repeatable on a noisy machine; compare modes (off vs cache) and builds in one sitting.
#
#   bash benches/load/callgrind_hit.sh SERVER_BINARY TOKENS_DIR FRAMEWORK AUTH [N]
#
#   SERVER_BINARY  a release build of load_server (cargo build --release -p benches --bin load_server)
#   TOKENS_DIR     made by load_tokens --out DIR --count 1 (jwks.json, tokens.txt)
#   FRAMEWORK      axum | actix        AUTH  off | cache
# Prints: FRAMEWORK AUTH N instructions-per-request
set -euo pipefail
server=$1 dir=$2 framework=$3 auth=$4 n=${5:-10000}
port=$((18000 + RANDOM % 2000))
out=$(mktemp -d)
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/cg.out" \
  "$server" --framework "$framework" --auth "$auth" --workers 1 --bind "127.0.0.1:$port" \
  --jwks "$dir/jwks.json" --issuer https://issuer.example --audience bench-api 2>"$out/valgrind.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$out"' EXIT
python3 - "$port" "$dir/tokens.txt" "$n" "$pid" <<'EOF'
import http.client, subprocess, sys, time
port, tokens, n, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
token = open(tokens).readline().strip()
for _ in range(600):  # valgrind starts slowly
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/rss"); conn.getresponse().read(); break
    except OSError:
        time.sleep(0.1)
headers = {"Authorization": f"Bearer {token}"}
def send(count):
    for _ in range(count):
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse(); response.read()
        assert response.status == 200, response.status
send(200)  # warm-up: the token cached, connections and allocations settled
subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
send(n)
# The dump holds what was counted while instrumented: the n requests.
subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
EOF
sleep 1
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out"/cg.out.1)
echo "$framework $auth $n $((total / n))"
