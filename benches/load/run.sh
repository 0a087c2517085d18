#!/usr/bin/env bash
# HTTP load bench: this library's axum layer and actix middleware against no auth, a
# hand-written jsonwebtoken layer and jwt-authorizer 0.15, over loopback with wrk.
#
#   bash benches/load/run.sh                     # ~9 min on 2 cores (+1.5 min to mint tokens)
#   ROUNDS=2 SCALING_ROUNDS=1 bash benches/load/run.sh  # a quick look
#
# Not run by CI (too long, too noisy): CI only builds the binaries (they are part of the
# workspace build). The jwt-authorizer peer is a crate of its own that the workspace
# never compiles; this script builds it.
#
# Knobs (environment):
#   DURATION=3        seconds per wrk run
#   ROUNDS=6          rounds of the main matrix: every server takes a turn in each round;
#                     the report gives medians and the median of the per-round ratios
#   SCALING_ROUNDS=3  rounds of the scaling section (best req/s, least CPU per request)
#   TOKENS=100000     distinct tokens (cache-defeating runs and the RSS check)
#   CONNECTIONS=32    wrk connections (wrk -t1)
#   CACHE_CAPACITY=10000  the token cache bound for the `cache` mode and the RSS check
#   SERVER_CPU=0 CLIENT_CPU=1   cores for the server and for wrk (taskset)
#   PORT=18090        first loopback port (one per server of a section)
#   FRAMEWORKS="axum actix"
#   SECTIONS="matrix scaling rss"
#   OUT=target/load   where tokens, logs and raw results go
#   SKIP_BUILD=1      use the binaries already built
#
# Everything listens on and sends to 127.0.0.1 only; every loop is bounded; servers are
# killed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=${DURATION:-3}
ROUNDS=${ROUNDS:-6}
SCALING_ROUNDS=${SCALING_ROUNDS:-3}
TOKENS=${TOKENS:-100000}
CONNECTIONS=${CONNECTIONS:-32}
CACHE_CAPACITY=${CACHE_CAPACITY:-10000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18090}
FRAMEWORKS=${FRAMEWORKS:-axum actix}
SECTIONS=${SECTIONS:-matrix scaling rss}
OUT=${OUT:-target/load}
ISSUER=https://issuer.example
AUDIENCE=bench-api
HOST=127.0.0.1
LUA=$ROOT/benches/load/token.lua
SERVER=$ROOT/target/release/load_server
PEER_DIR=$ROOT/benches/peer-jwt-authorizer
PEER=$PEER_DIR/target/release/peer-jwt-authorizer
CLK_TCK=$(getconf CLK_TCK)
BOTH_CPUS="$SERVER_CPU,$CLIENT_CPU"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.txt
: >"$RESULTS"

cleanup() {
  local pid
  for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

# ---- prerequisites --------------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  log "== installing ${need[*]} (Debian packages)"
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to apt-get install ${need[*]}; install them and re-run"
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  log "== building (release): load_server, load_tokens, peer-jwt-authorizer"
  cargo build --release -q -p benches --bin load_server --bin load_tokens
  # Its own workspace and target dir (benches/peer-jwt-authorizer/target): axum 0.7 and
  # jsonwebtoken 9 never enter the workspace's lock file or build.
  cargo build --release -q --manifest-path "$PEER_DIR/Cargo.toml"
fi

# ---- tokens (reused while less than an hour old: they expire after two) -----------------
have_tokens=0
if [ -f "$OUT/minted_at" ] && [ -f "$OUT/tokens.txt" ] && [ -f "$OUT/jwks.json" ]; then
  age=$(($(date +%s) - $(cat "$OUT/minted_at")))
  lines=$(wc -l <"$OUT/tokens.txt")
  if [ "$age" -lt 3600 ] && [ "$lines" -ge "$TOKENS" ]; then
    have_tokens=1
    log "== reusing $lines tokens minted ${age}s ago in $OUT"
  fi
fi
if [ "$have_tokens" -eq 0 ]; then
  log "== minting $TOKENS RS256 tokens (about 1 ms each, on every core)"
  "$ROOT/target/release/load_tokens" --out "$OUT" --count "$TOKENS" --issuer "$ISSUER" --audience "$AUDIENCE" >&2
fi
TOKEN_FILE=$OUT/tokens.txt
JWKS=$OUT/jwks.json

# ---- helpers --------------------------------------------------------------------------
# Every server of a section runs at once, each on its own port; only the one under load
# uses CPU. Runs of different servers then alternate every few seconds, so the slow drift
# of a shared machine hits all of them alike, and each round's ratios compare neighbours.
declare -A PID_OF
NEXT_PORT=$PORT

# start_server ID CPUS WORKERS FRAMEWORK MODE [CAPACITY]: a server for ID on the next port
start_server() {
  local id=$1 cpus=$2 workers=$3 framework=$4 mode=$5 capacity=${6:-$CACHE_CAPACITY}
  local port=$NEXT_PORT
  NEXT_PORT=$((NEXT_PORT + 1))
  local cmd
  if [ "$mode" = jwt-authorizer ]; then
    cmd=("$PEER" --bind "$HOST:$port" --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --workers "$workers")
  else
    cmd=("$SERVER" --framework "$framework" --auth "$mode" --workers "$workers" --bind "$HOST:$port"
      --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --cache-capacity "$capacity")
  fi
  if curl -fs -o /dev/null "http://$HOST:$port/rss"; then
    log "something already answers on $HOST:$port; stop it or set PORT"
    exit 1
  fi
  taskset -c "$cpus" "${cmd[@]}" >"$OUT/server-${id//\//_}.log" 2>&1 &
  local pid=$!
  PID_OF[$id]="$pid $port"
  local i
  for i in $(seq 1 100); do
    if curl -fs -o /dev/null "http://$HOST:$port/rss" && kill -0 "$pid" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "server did not start: ${cmd[*]}"
  cat "$OUT/server-${id//\//_}.log" >&2
  exit 1
}

pid_of() { local v=${PID_OF[$1]}; echo "${v% *}"; }
port_of() { local v=${PID_OF[$1]}; echo "${v#* }"; }

stop_servers() {
  local id pid i
  for id in "${!PID_OF[@]}"; do kill -TERM "$(pid_of "$id")" 2>/dev/null || true; done
  for id in "${!PID_OF[@]}"; do
    pid=$(pid_of "$id")
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PID_OF=()
  NEXT_PORT=$PORT
  # let the ports' connections drain
  sleep 0.3
}

server_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
server_status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# wrk_run KEY ID CPUS SECONDS LIMIT [START]: appends "KEY rps p50_us p99_us non2xx requests srv_cpu_s wrk_cpu_s"
# LIMIT 1 = one repeated token; LIMIT N = cycle through the first N tokens, from START.
wrk_run() {
  local key=$1 id=$2 cpus=$3 seconds=$4 limit=$5 start=${6:-0}
  local pid port
  pid=$(pid_of "$id")
  port=$(port_of "$id")
  local raw=$OUT/wrk-${key//\//_}.txt
  local t0 t1
  t0=$(server_ticks "$pid")
  local TIMEFORMAT='%U %S'
  { time taskset -c "$cpus" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency -s "$LUA" "http://$HOST:$port/" -- "$TOKEN_FILE" "$limit" "$start" >"$raw" 2>&1; } 2>"$raw.time"
  t1=$(server_ticks "$pid")
  awk -v key="$key" -v srv="$(((t1 - t0)))" -v tck="$CLK_TCK" -v wrkt="$(cat "$raw.time")" '
    function us(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v + 0 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v * 1000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000000 }
      return v + 0
    }
    /^ +50%/ { p50 = us($2) } /^ +99%/ { p99 = us($2) }
    /requests in/ { n = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    END {
      split(wrkt, w, " ")
      printf "%s %.0f %.0f %.0f %d %d %.2f %.2f\n", key, rps, p50, p99, bad + 0, n + 0, srv / tck, w[1] + w[2]
    }' "$raw" | tee -a "$RESULTS" >/dev/null
  if grep -q "Non-2xx" "$raw"; then
    log "   !! $key: $(grep Non-2xx "$raw")"
  fi
}

# requests of the last wrk_run
last_requests() { tail -1 "$RESULTS" | awk '{print $6}'; }

warm() { # ID
  local port
  port=$(port_of "$1")
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d1s -s "$LUA" "http://$HOST:$port/" -- "$TOKEN_FILE" 1 >/dev/null 2>&1
}

modes_for() {
  if [ "$1" = axum ]; then echo "off cache nocache jsonwebtoken jwt-authorizer"; else echo "off cache nocache jsonwebtoken"; fi
}

# in_order ROUND WORDS...: the words forward in odd rounds, backward in even ones
in_order() {
  local round=$1
  shift
  if [ $((round % 2)) -eq 0 ]; then printf '%s\n' "$@" | tac | tr '\n' ' '; else echo "$*"; fi
}

# ---- 1. the matrix: every framework x mode, repeated and distinct tokens, interleaved ---
if [[ " $SECTIONS " == *" matrix "* ]]; then
  ids=()
  for framework in $FRAMEWORKS; do
    for mode in $(modes_for "$framework"); do
      ids+=("$framework/$mode")
      start_server "$framework/$mode" "$SERVER_CPU" 1 "$framework" "$mode"
      warm "$framework/$mode"
    done
  done
  declare -A sent
  for id in "${ids[@]}"; do sent[$id]=0; done
  for round in $(seq 1 "$ROUNDS"); do
    log "== matrix round $round/$ROUNDS: ${#ids[@]} servers, repeated then distinct tokens"
    for id in $(in_order "$round" "${ids[@]}"); do
      wrk_run "m/$id/repeated/$round" "$id" "$CLIENT_CPU" "$DURATION" 1
    done
    for id in $(in_order "$round" "${ids[@]}"); do
      # each server continues where its last run stopped, so no token comes back while
      # it could still be cached
      wrk_run "m/$id/distinct/$round" "$id" "$CLIENT_CPU" "$DURATION" "$TOKENS" "${sent[$id]}"
      sent[$id]=$(((sent[$id] + $(last_requests)) % TOKENS))
    done
  done
  stop_servers
fi

# ---- 2. scaling: 1 worker on 1 core vs 2 workers on 2 cores, wrk sharing the cores ------
if [[ " $SECTIONS " == *" scaling "* ]]; then
  # "off" is the framework's own ceiling on this machine: what auth-on is compared with.
  workloads=("nocache distinct $TOKENS" "off repeated 1" "cache repeated 1")
  for framework in $FRAMEWORKS; do
    for workload in "${workloads[@]}"; do
      read -r mode tokens limit <<<"$workload"
      start_server "s/$framework/$mode/1" "$SERVER_CPU" 1 "$framework" "$mode"
      warm "s/$framework/$mode/1"
      start_server "s/$framework/$mode/2" "$BOTH_CPUS" 2 "$framework" "$mode"
      warm "s/$framework/$mode/2"
    done
  done
  for round in $(seq 1 "$SCALING_ROUNDS"); do
    log "== scaling round $round/$SCALING_ROUNDS: 1 worker on cpu $SERVER_CPU vs 2 workers on cpus $BOTH_CPUS"
    for framework in $FRAMEWORKS; do
      for workload in "${workloads[@]}"; do
        read -r mode tokens limit <<<"$workload"
        for workers in $(in_order "$round" 1 2); do
          wrk_run "s/$framework/$mode-$tokens/$workers/$round" "s/$framework/$mode/$workers" "$BOTH_CPUS" "$DURATION" "$limit" \
            $((round * 20000 % TOKENS))
        done
      done
    done
  done
  stop_servers
fi

# ---- 3. memory: TOKENS distinct tokens through the cache ---------------------------------
RSS_LINES=()
if [[ " $SECTIONS " == *" rss "* ]]; then
  rss_run() { # FRAMEWORK CAPACITY
    local framework=$1 capacity=$2
    local id="r/$framework/$capacity"
    log "== rss: $framework, cache capacity $capacity, $TOKENS distinct tokens"
    start_server "$id" "$SERVER_CPU" 1 "$framework" cache "$capacity"
    warm "$id"
    local pid before stats after hwm sent=0 part
    pid=$(pid_of "$id")
    before=$(server_status "$pid" VmRSS)
    # until every token has been sent at least once (each run continues where the last
    # one stopped); at most 8 runs
    for part in $(seq 1 8); do
      wrk_run "$id/$part" "$id" "$CLIENT_CPU" "$DURATION" "$TOKENS" "$sent"
      sent=$((sent + $(last_requests)))
      [ "$sent" -lt "$TOKENS" ] || break
    done
    after=$(server_status "$pid" VmRSS)
    hwm=$(server_status "$pid" VmHWM)
    stats=$(curl -fs "http://$HOST:$(port_of "$id")/stats")
    stop_servers
    RSS_LINES+=("$(awk -v fw="$framework" -v cap="$capacity" -v a="$before" -v b="$after" -v h="$hwm" -v st="$stats" \
      -v sent="$sent" 'BEGIN { printf "%-6s %9d %9.1f %9.1f %9.1f %9d   %s", fw, cap, a / 1024, b / 1024, h / 1024, sent, st }')")
  }
  for framework in $FRAMEWORKS; do
    rss_run "$framework" "$CACHE_CAPACITY"
  done
  # the same load with room for every token: what the bound saves
  rss_run axum "$TOKENS"
fi

# ---- report ---------------------------------------------------------------------------
report() {
  awk -v duration="$DURATION" -v rounds="$ROUNDS" -v srounds="$SCALING_ROUNDS" -v conns="$CONNECTIONS" -v tokens="$TOKENS" \
    -v scpu="$SERVER_CPU" -v ccpu="$CLIENT_CPU" -v cap="$CACHE_CAPACITY" '
    function lat(v) { return v >= 1000 ? sprintf("%.2fms", v / 1000) : sprintf("%dus", v) }
    function verdict(x, t) { return x >= t ? "MET" : "MISSED" }
    # median of the n values v[1..n] (sorted in place)
    function median(v, n,    i, j, t) {
      for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
      return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    # per-round ratios a/b (req/s) for ids a and b: "median (min-max)"; sets RATIO to the median
    function ratio(a, b,    r, n, lo, hi, x, v) {
      n = 0
      for (r = 1; r <= rounds; r++) if ((a, r) in rps && (b, r) in rps && rps[b, r] > 0) {
        x = rps[a, r] / rps[b, r]; v[++n] = x
        if (n == 1 || x < lo) lo = x
        if (n == 1 || x > hi) hi = x
      }
      if (n == 0) { RATIO = 0; return "-" }
      RATIO = median(v, n)
      return sprintf("%.2fx (%.2f-%.2f)", RATIO, lo, hi)
    }
    # ratio of CPU time per request, b over a (higher = a cheaper), median over rounds
    function cpu_ratio(a, b,    r, n, v) {
      n = 0
      for (r = 1; r <= rounds; r++) if ((a, r) in cpu && (b, r) in cpu && cpu[a, r] > 0) v[++n] = cpu[b, r] / cpu[a, r]
      return n ? sprintf("%.2fx", median(v, n)) : "-"
    }
    function med_of(arr, id,    r, n, v) {
      n = 0
      for (r = 1; r <= rounds; r++) if ((id, r) in arr) v[++n] = arr[id, r]
      return n ? median(v, n) : 0
    }
    {
      split($1, k, "/")
      if (k[1] == "m") {
        id = k[2] "/" k[3] "/" k[4]; r = k[5]
        rps[id, r] = $2; p50[id, r] = $3; p99[id, r] = $4
        cpu[id, r] = $7 / ($6 > 0 ? $6 : 1) * 1e6
        all[id] = all[id] sprintf(" %.0fk", $2 / 1000)
        seen[id] = 1
        if ($5 > 0) bad[id] += $5
      } else if (k[1] == "s") {
        id = k[2] "/" k[3]; w = id "/" k[4]
        c = $7 / ($6 > 0 ? $6 : 1) * 1e6
        if (!(w in srps) || $2 > srps[w]) srps[w] = $2
        if (!(w in scpu_us) || c < scpu_us[w]) { scpu_us[w] = c; wcpu_us[w] = $8 / ($6 > 0 ? $6 : 1) * 1e6 }
        sbad[id] += $5
        if (!(id in sseen)) { sseen[id] = 1; sorder[++ns] = id }
      }
    }
    END {
      nf = split("axum actix", fws, " ")
      printf "\nservers: 1 worker each, all running at once, pinned to cpu %s; wrk -t1 -c%s pinned to cpu %s; %ss per run;\n", scpu, conns, ccpu, duration
      printf "%s rounds, the servers taking turns within each round (order reversed every other round).\n", rounds
      printf "req/s, p50, p99, cpu/req: medians over the rounds; ratios: the median of the per-round ratios (min-max)\n"
      for (set = 1; set <= 2; set++) {
        s = set == 1 ? "repeated" : "distinct"
        if (set == 1) printf "\n== one token repeated (the token cache case)\n"
        else printf "\n== every token distinct: %s tokens cycled (cache capacity %s, so the cache is defeated)\n", tokens, cap
        printf "%-6s %-15s %8s %8s %8s %20s %20s %20s %9s  %s\n", "fw", "auth", "req/s", "p50", "p99", "vs off", "vs jsonwebtoken", "vs jwt-authorizer", "cpu/req", "req/s by round"
        for (f = 1; f <= nf; f++) {
          fw = fws[f]
          split("off cache nocache jsonwebtoken jwt-authorizer", ms, " ")
          for (m = 1; m <= 5; m++) {
            id = fw "/" ms[m] "/" s
            if (!(id in seen)) continue
            printf "%-6s %-15s %8d %8s %8s %20s %20s %20s %7.1fus %s%s\n", fw, ms[m], med_of(rps, id), lat(med_of(p50, id)), lat(med_of(p99, id)),
              ratio(id, fw "/off/" s), ratio(id, fw "/jsonwebtoken/" s), ratio(id, "axum/jwt-authorizer/" s),
              med_of(cpu, id), all[id], (id in bad) ? sprintf("  !! %d non-2xx", bad[id]) : ""
          }
        }
      }
      printf "\n(cpu/req: server CPU time, user+sys, per request; jwt-authorizer runs on axum)\n"

      printf "\n== targets (median of per-round req/s ratios; the same ratio from CPU time per request beside it)\n"
      for (f = 1; f <= nf; f++) {
        fw = fws[f]
        a = fw "/cache/repeated"; b = fw "/off/repeated"
        if ((a in seen) && (b in seen)) { t = ratio(a, b); printf "%-6s repeated token, cache on vs no auth:              %-20s by cpu %s (target >= 0.90x) %s\n", fw, t, cpu_ratio(a, b), verdict(RATIO, 0.90) }
        split("cache nocache", cm, " ")
        for (i = 1; i <= 2; i++) {
          a = fw "/" cm[i] "/distinct"
          b = fw "/jsonwebtoken/distinct"
          if ((a in seen) && (b in seen)) { t = ratio(a, b); printf "%-6s distinct tokens, %-7s vs jsonwebtoken layer:   %-20s by cpu %s (target >= 1.00x) %s\n", fw, cm[i], t, cpu_ratio(a, b), verdict(RATIO, 1.0) }
          b = "axum/jwt-authorizer/distinct"
          if ((a in seen) && (b in seen)) { t = ratio(a, b); printf "%-6s distinct tokens, %-7s vs jwt-authorizer:      %-20s by cpu %s (target >= 1.15x) %s\n", fw, cm[i], t, cpu_ratio(a, b), verdict(RATIO, 1.15) }
        }
      }

      if (ns > 0) {
        printf "\n== scaling: 1 worker pinned to 1 core vs 2 workers on 2 cores; wrk -t1 -c%s shares both cores in both runs\n", conns
        printf "%-24s %9s %9s %7s %10s %10s %10s %10s\n", "fw/workload", "1w req/s", "2w req/s", "ratio", "srv 1w", "srv 2w", "wrk 2w", "projected"
        for (i = 1; i <= ns; i++) {
          id = sorder[i]; a = srps[id "/1"]; b = srps[id "/2"]
          proj = scpu_us[id "/2"] > 0 ? 2 * scpu_us[id "/1"] / scpu_us[id "/2"] : 0
          printf "%-24s %9d %9d %6.2fx %8.1fus %8.1fus %8.1fus %9.2fx%s\n", id, a, b, (a ? b / a : 0), scpu_us[id "/1"], scpu_us[id "/2"], wcpu_us[id "/2"], proj, sbad[id] ? "  !! non-2xx" : ""
        }
        printf "(best of %s interleaved rounds. srv/wrk: CPU time per request of the server / of wrk. projected = 2 x srv1w / srv2w:\n", srounds
        printf " the scaling two dedicated server cores would give at the measured per-request cost; a lock on the hot path would\n"
        printf " raise srv 2w above srv 1w. The measured ratio is capped by wrk: it needs its own share of the same two cores.\n"
        printf " off-repeated is the framework with no auth at all: the ceiling on this machine for the same request. Target: >= 1.8x.)\n"
      }
    }' "$RESULTS"
}

{
  echo "HTTP load bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), tokens: RS256 2048-bit, $(head -1 "$TOKEN_FILE" | wc -c) bytes"
  report
  if [ ${#RSS_LINES[@]} -gt 0 ]; then
    echo
    echo "== memory: $TOKENS distinct tokens through the cache-on server (1 worker); VmRSS before (warm, 1 token) / after, VmHWM"
    printf '%-6s %9s %9s %9s %9s %9s   %s\n' fw capacity "MiB pre" "MiB post" "MiB peak" requests "server stats after (counters include the warm-up)"
    for line in "${RSS_LINES[@]}"; do echo "$line"; done
  fi
  echo
  echo "raw results: $RESULTS (key rps p50_us p99_us non2xx requests server_cpu_s wrk_cpu_s); wrk outputs beside it"
}
