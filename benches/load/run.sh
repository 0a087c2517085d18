#!/usr/bin/env bash
# HTTP load bench: this library's axum layer and actix middleware against no auth, a
# hand-written jsonwebtoken layer and jwt-authorizer 0.15, over loopback with wrk.
#
#   bash benches/load/run.sh                     # ~6-8 min on 2 cores
#   DURATION=5 ROUNDS=1 bash benches/load/run.sh  # a quick look
#
# Not run by CI (too long, too noisy): CI only builds the binaries (they are part of the
# workspace build). The jwt-authorizer peer is a crate of its own that the workspace
# never compiles; this script builds it.
#
# Knobs (environment):
#   DURATION=8        seconds per wrk run
#   ROUNDS=2          rounds of the main matrix (modes alternate; the best round is shown)
#   SCALING_ROUNDS=2  rounds of the scaling section (best req/s, least CPU per request)
#   TOKENS=100000     distinct tokens (cache-defeating runs and the RSS check)
#   CONNECTIONS=32    wrk connections (wrk -t1)
#   CACHE_CAPACITY=10000  the token cache bound for the `cache` mode and the RSS check
#   SERVER_CPU=0 CLIENT_CPU=1   cores for the server and for wrk (taskset)
#   PORT=18090        loopback port
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

DURATION=${DURATION:-8}
ROUNDS=${ROUNDS:-2}
SCALING_ROUNDS=${SCALING_ROUNDS:-2}
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
URL="http://$HOST:$PORT/"
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

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
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
# start_server CPUS WORKERS FRAMEWORK MODE [CAPACITY]
start_server() {
  local cpus=$1 workers=$2 framework=$3 mode=$4 capacity=${5:-$CACHE_CAPACITY}
  local cmd
  if [ "$mode" = jwt-authorizer ]; then
    cmd=("$PEER" --bind "$HOST:$PORT" --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --workers "$workers")
  else
    cmd=("$SERVER" --framework "$framework" --auth "$mode" --workers "$workers" --bind "$HOST:$PORT"
      --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --cache-capacity "$capacity")
  fi
  if curl -fs -o /dev/null "http://$HOST:$PORT/rss"; then
    log "something already answers on $HOST:$PORT; stop it or set PORT"
    exit 1
  fi
  taskset -c "$cpus" "${cmd[@]}" >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 100); do
    if curl -fs -o /dev/null "http://$HOST:$PORT/rss" && kill -0 "$SERVER_PID" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "server did not start: ${cmd[*]}"
  cat "$OUT/server.log" >&2
  exit 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
  # let the port's connections drain
  sleep 0.3
}

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
server_status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$SERVER_PID/status"; }

# wrk_run KEY CPUS SECONDS LIMIT [START]: appends "KEY rps p50_us p99_us non2xx requests srv_cpu_s wrk_cpu_s"
# LIMIT 1 = one repeated token; LIMIT N = cycle through the first N tokens, from START.
wrk_run() {
  local key=$1 cpus=$2 seconds=$3 limit=$4 start=${5:-0}
  local raw=$OUT/wrk-${key//\//_}.txt
  local t0 t1
  t0=$(server_ticks)
  local TIMEFORMAT='%U %S'
  { time taskset -c "$cpus" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency -s "$LUA" "$URL" -- "$TOKEN_FILE" "$limit" "$start" >"$raw" 2>&1; } 2>"$raw.time"
  t1=$(server_ticks)
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

warm() { taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d1s -s "$LUA" "$URL" -- "$TOKEN_FILE" 1 >/dev/null 2>&1; }

modes_for() {
  if [ "$1" = axum ]; then echo "off cache nocache jsonwebtoken jwt-authorizer"; else echo "off cache nocache jsonwebtoken"; fi
}

# ---- 1. the matrix: every framework x mode, repeated and distinct tokens, alternating ----
if [[ " $SECTIONS " == *" matrix "* ]]; then
  for round in $(seq 1 "$ROUNDS"); do
    for framework in $FRAMEWORKS; do
      modes=$(modes_for "$framework")
      # odd rounds forward, even rounds backward: drift on a shared machine cancels out
      if [ $((round % 2)) -eq 0 ]; then modes=$(echo "$modes" | tr ' ' '\n' | tac | tr '\n' ' '); fi
      for mode in $modes; do
        log "== round $round/$ROUNDS: $framework $mode"
        start_server "$SERVER_CPU" 1 "$framework" "$mode"
        warm
        wrk_run "m/$framework/$mode/repeated/$round" "$CLIENT_CPU" "$DURATION" 1
        wrk_run "m/$framework/$mode/distinct/$round" "$CLIENT_CPU" "$DURATION" "$TOKENS"
        stop_server
      done
    done
  done
fi

# ---- 2. scaling: 1 worker on 1 core vs 2 workers on 2 cores, wrk sharing the cores ------
if [[ " $SECTIONS " == *" scaling "* ]]; then
  # "off" is the framework's own ceiling on this machine: what auth-on is compared with.
  for round in $(seq 1 "$SCALING_ROUNDS"); do
    for framework in $FRAMEWORKS; do
      for workload in "nocache distinct $TOKENS" "off repeated 1" "cache repeated 1"; do
        read -r mode tokens limit <<<"$workload"
        log "== scaling $round/$SCALING_ROUNDS: $framework $mode $tokens, 1 worker on cpu $SERVER_CPU vs 2 workers on cpus $BOTH_CPUS"
        start_server "$SERVER_CPU" 1 "$framework" "$mode"
        warm
        wrk_run "s/$framework/$mode-$tokens/1/$round" "$BOTH_CPUS" "$DURATION" "$limit"
        stop_server
        start_server "$BOTH_CPUS" 2 "$framework" "$mode"
        warm
        wrk_run "s/$framework/$mode-$tokens/2/$round" "$BOTH_CPUS" "$DURATION" "$limit"
        stop_server
      done
    done
  done
fi

# ---- 3. memory: TOKENS distinct tokens through the cache ---------------------------------
RSS_LINES=()
if [[ " $SECTIONS " == *" rss "* ]]; then
  rss_run() { # FRAMEWORK CAPACITY
    local framework=$1 capacity=$2
    log "== rss: $framework, cache capacity $capacity, $TOKENS distinct tokens"
    start_server "$SERVER_CPU" 1 "$framework" cache "$capacity"
    warm
    local before stats after hwm sent=0 part
    before=$(server_status VmRSS)
    # until every token has been sent at least once (each run continues where the last
    # one stopped); at most 8 runs
    for part in $(seq 1 8); do
      wrk_run "r/$framework/$capacity/$part" "$CLIENT_CPU" "$DURATION" "$TOKENS" "$sent"
      sent=$((sent + $(tail -1 "$RESULTS" | awk '{print $6}')))
      [ "$sent" -lt "$TOKENS" ] || break
    done
    after=$(server_status VmRSS)
    hwm=$(server_status VmHWM)
    stats=$(curl -fs "http://$HOST:$PORT/stats")
    stop_server
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
    {
      split($1, k, "/")
      if (k[1] == "m") {
        id = k[2] "/" k[3] "/" k[4]
        if (!(id in best) || $2 > best[id]) { best[id] = $2; p50[id] = $3; p99[id] = $4 }
        all[id] = all[id] sprintf(" %.0fk", $2 / 1000)
        if ($5 > 0) bad[id] += $5
        c = $7 / ($6 > 0 ? $6 : 1) * 1e6
        if (!(id in cpu) || c < cpu[id]) cpu[id] = c
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
      printf "\nserver: 1 worker pinned to cpu %s; wrk -t1 -c%s pinned to cpu %s; %ss per run; best of %s rounds (all rounds listed)\n", scpu, conns, ccpu, duration, rounds
      for (set = 1; set <= 2; set++) {
        s = set == 1 ? "repeated" : "distinct"
        if (set == 1) printf "\n== one token repeated (the token cache case)\n"
        else printf "\n== every token distinct: %s tokens cycled (cache capacity %s, so the cache is defeated)\n", tokens, cap
        printf "%-6s %-15s %9s %9s %9s %8s %8s %8s %9s  %s\n", "fw", "auth", "req/s", "p50", "p99", "vs off", "vs jwt", "vs j-a", "cpu/req", "rounds"
        for (f = 1; f <= nf; f++) {
          fw = fws[f]
          split("off cache nocache jsonwebtoken jwt-authorizer", ms, " ")
          for (m = 1; m <= 5; m++) {
            id = fw "/" ms[m] "/" s
            if (!(id in best)) continue
            off = best[fw "/off/" s]; jw = best[fw "/jsonwebtoken/" s]; ja = best["axum/jwt-authorizer/" s]
            printf "%-6s %-15s %9d %9s %9s %8s %8s %8s %7.1fus %s%s\n", fw, ms[m], best[id], lat(p50[id]), lat(p99[id]),
              off ? sprintf("%.2fx", best[id] / off) : "-", jw ? sprintf("%.2fx", best[id] / jw) : "-",
              ja ? sprintf("%.2fx", best[id] / ja) : "-", cpu[id], all[id], (id in bad) ? sprintf("  !! %d non-2xx", bad[id]) : ""
          }
        }
      }
      printf "\n(cpu/req: server CPU time, user+sys, per request, the least of the rounds; vs j-a: against jwt-authorizer on axum)\n"

      printf "\n== targets\n"
      for (f = 1; f <= nf; f++) {
        fw = fws[f]
        c = best[fw "/cache/repeated"]; off = best[fw "/off/repeated"]
        cc = cpu[fw "/cache/repeated"]; coff = cpu[fw "/off/repeated"]
        if (c && off) printf "%-6s repeated token, cache on vs no auth:            %.2fx req/s, %.2fx by cpu/req (target >= 0.90x) %s\n", fw, c / off, coff / cc, verdict(c / off, 0.90)
        jw = best[fw "/jsonwebtoken/distinct"]; ja = best["axum/jwt-authorizer/distinct"]
        cjw = cpu[fw "/jsonwebtoken/distinct"]; cja = cpu["axum/jwt-authorizer/distinct"]
        split("cache nocache", cm, " ")
        for (i = 1; i <= 2; i++) {
          x = best[fw "/" cm[i] "/distinct"]; cx = cpu[fw "/" cm[i] "/distinct"]
          if (x && jw) printf "%-6s distinct tokens, %-7s vs jsonwebtoken layer:     %.2fx req/s, %.2fx by cpu/req (target >= 1.00x) %s\n", fw, cm[i], x / jw, cjw / cx, verdict(x / jw, 1.0)
          if (x && ja) printf "%-6s distinct tokens, %-7s vs jwt-authorizer (axum):  %.2fx req/s, %.2fx by cpu/req (target >= 1.15x) %s\n", fw, cm[i], x / ja, cja / cx, verdict(x / ja, 1.15)
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
        printf "(best of %s rounds. srv/wrk: CPU time per request of the server / of wrk. projected = 2 x srv1w / srv2w: the scaling two dedicated\n", srounds
        printf " server cores would give at the measured per-request cost; a lock on the hot path would raise srv 2w above srv 1w.\n"
        printf " The measured ratio is capped by wrk: it needs its own share of the same two cores. off-repeated is the framework\n"
        printf " with no auth at all, the ceiling on this machine for the same request. Target: >= 1.8x.)\n"
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
