#!/usr/bin/env bash
# HTTP load bench: this library's axum layer and actix middleware against no auth, a
# hand-written jsonwebtoken layer and jwt-authorizer 0.15, over loopback with wrk.
#
#   bash benches/load/run.sh                     # ~9 min on 2 cores (+1.5 min to mint tokens)
#   ROUNDS=2 SCALING_ROUNDS=1 bash benches/load/run.sh  # a quick look
#
# It takes no arguments; everything is set through the environment (below). Not run by
# CI (too long, too noisy): CI only builds the binaries (they are part of the workspace
# build). The jwt-authorizer peer is a crate of its own that the workspace never
# compiles; this script builds it.
#
# What it measures (SECTIONS, in this order):
#   matrix   every framework x auth mode (off, cache, nocache, jsonwebtoken, and
#            jwt-authorizer for axum), 1 worker each: req/s, p50, p99 and server CPU per
#            request, with one token repeated and with TOKENS distinct tokens cycled
#   scaling  1 worker on SERVER_CPU vs 2 workers on both cores, for nocache/distinct,
#            off/repeated and cache/repeated: best req/s, least CPU per request
#   rss      the cache-on server fed TOKENS distinct tokens: VmRSS before/after, VmHWM
#            and its /stats, at CACHE_CAPACITY (each framework) and at TOKENS (axum)
# Every server of a section runs at once, each on its own port; the runs take turns
# (order reversed every other round), so a shared machine's drift hits them all alike.
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
#   OUT=target/load   where tokens, logs and raw results go (relative to the repo root)
#   SKIP_BUILD=1      (any non-empty value) use the binaries already built
#
# Needs wrk, curl and taskset; when one is missing it is apt-get installed (as root only).
#
# Outputs:
#   stdout   the report: matrix tables, targets, scaling table, memory table
#   stderr   progress lines ("== ..."), build and minting output, non-2xx warnings
#   OUT/     tokens.txt, jwks.json, minted_at (tokens are reused while under an hour old
#            and at least TOKENS of them); results.txt (one line per wrk run: key rps
#            p50_us p99_us non2xx requests server_cpu_s wrk_cpu_s); wrk-KEY.txt and
#            wrk-KEY.txt.time (wrk's output, its user+sys time); server-ID.log
#
# Everything listens on and sends to 127.0.0.1 only; every loop is bounded; servers are
# killed on exit. The helpers (servers, wrk runs, the report) are in lib.sh beside this.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# shellcheck source=benches/load/lib.sh
source "$ROOT/benches/load/lib.sh"

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
TOKEN_MINTER=$ROOT/target/release/load_tokens
PEER_DIR=$ROOT/benches/peer-jwt-authorizer
PEER=$PEER_DIR/target/release/peer-jwt-authorizer
CLK_TCK=$(getconf CLK_TCK)
BOTH_CPUS="$SERVER_CPU,$CLIENT_CPU"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS=$OUT/results.txt
TOKEN_FILE=$OUT/tokens.txt
JWKS=$OUT/jwks.json

RSS_LINES=() # one formatted row per memory run, printed at the end

section_enabled() { [[ " $SECTIONS " == *" $1 "* ]]; }

# ---- 1. the matrix: every framework x mode, repeated and distinct tokens, interleaved ---
run_matrix() {
  local ids=() framework mode id round
  local -A next_start=() # per server: the token its next distinct-token run starts at
  for framework in $FRAMEWORKS; do
    for mode in $(modes_for "$framework"); do
      id=$framework/$mode
      ids+=("$id")
      next_start[$id]=0
      start_warm_server "$id" "$SERVER_CPU" 1 "$framework" "$mode"
    done
  done
  for round in $(seq 1 "$ROUNDS"); do
    log "== matrix round $round/$ROUNDS: ${#ids[@]} servers, repeated then distinct tokens"
    for id in $(in_order "$round" "${ids[@]}"); do
      wrk_run "m/$id/repeated/$round" "$id" "$CLIENT_CPU" "$DURATION" 1
    done
    for id in $(in_order "$round" "${ids[@]}"); do
      # each server continues where its last run stopped, so no token comes back while
      # it could still be cached
      wrk_run "m/$id/distinct/$round" "$id" "$CLIENT_CPU" "$DURATION" "$TOKENS" "${next_start[$id]}"
      next_start[$id]=$(((next_start[$id] + $(last_requests)) % TOKENS))
    done
  done
  stop_servers
}

# ---- 2. scaling: 1 worker on 1 core vs 2 workers on 2 cores, wrk sharing the cores ------
run_scaling() {
  # "FRAMEWORK MODE TOKEN_KIND LIMIT" for every framework and workload. "off" is the
  # framework's own ceiling on this machine: what auth-on is compared with.
  local workloads=("nocache distinct $TOKENS" "off repeated 1" "cache repeated 1")
  local cases=() framework workload entry mode kind limit round workers
  for framework in $FRAMEWORKS; do
    for workload in "${workloads[@]}"; do cases+=("$framework $workload"); done
  done
  for entry in "${cases[@]}"; do
    read -r framework mode kind limit <<<"$entry"
    start_warm_server "s/$framework/$mode/1" "$SERVER_CPU" 1 "$framework" "$mode"
    start_warm_server "s/$framework/$mode/2" "$BOTH_CPUS" 2 "$framework" "$mode"
  done
  for round in $(seq 1 "$SCALING_ROUNDS"); do
    log "== scaling round $round/$SCALING_ROUNDS: 1 worker on cpu $SERVER_CPU vs 2 workers on cpus $BOTH_CPUS"
    for entry in "${cases[@]}"; do
      read -r framework mode kind limit <<<"$entry"
      for workers in $(in_order "$round" 1 2); do
        wrk_run "s/$framework/$mode-$kind/$workers/$round" "s/$framework/$mode/$workers" \
          "$BOTH_CPUS" "$DURATION" "$limit" $((round * 20000 % TOKENS))
      done
    done
  done
  stop_servers
}

# ---- 3. memory: TOKENS distinct tokens through the cache ---------------------------------
run_memory() {
  local framework
  for framework in $FRAMEWORKS; do
    rss_run "$framework" "$CACHE_CAPACITY"
  done
  # the same load with room for every token: what the bound saves
  rss_run axum "$TOKENS"
}

# rss_run FRAMEWORK CAPACITY: one cache-on server fed every token once; adds a RSS_LINES row
rss_run() {
  local framework=$1 capacity=$2
  local id="r/$framework/$capacity"
  log "== rss: $framework, cache capacity $capacity, $TOKENS distinct tokens"
  start_warm_server "$id" "$SERVER_CPU" 1 "$framework" cache "$capacity"
  local pid=${SERVER_PID[$id]} before after hwm stats sent=0 part
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
  stats=$(curl -fs "http://$HOST:${SERVER_PORT[$id]}/stats")
  stop_servers
  RSS_LINES+=("$(rss_row "$framework" "$capacity" "$before" "$after" "$hwm" "$sent" "$stats")")
}

main() {
  : >"$RESULTS"
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  install_missing_tools
  if [ -z "${SKIP_BUILD:-}" ]; then build_binaries; fi
  ensure_tokens
  if section_enabled matrix; then run_matrix; fi
  if section_enabled scaling; then run_scaling; fi
  if section_enabled rss; then run_memory; fi
  print_report
}

main "$@"
