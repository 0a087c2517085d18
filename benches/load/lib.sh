# shellcheck shell=bash
# Helpers of benches/load/run.sh, which sources this file (it is not run on its own).
# They use the knobs and paths that run.sh sets: OUT, RESULTS, TOKEN_FILE, JWKS, HOST,
# PORT, ISSUER, AUDIENCE, SERVER, PEER, PEER_DIR, TOKEN_MINTER, LUA, CONNECTIONS,
# CLIENT_CPU, CACHE_CAPACITY, TOKENS, CLK_TCK and the section knobs used by the report.

log() { printf '%s\n' "$*" >&2; }

# ---- setup ------------------------------------------------------------------------------

# cleanup: on exit, kill whatever this shell still runs in the background (the servers)
cleanup() {
  local pid
  for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# install_missing_tools: apt-get install wrk, curl or taskset when missing (root only)
install_missing_tools() {
  local need=()
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  command -v taskset >/dev/null 2>&1 || need+=(util-linux)
  [ ${#need[@]} -gt 0 ] || return 0
  log "== installing ${need[*]} (Debian packages)"
  if [ "$(id -u)" -ne 0 ]; then
    log "need root to apt-get install ${need[*]}; install them and re-run"
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

build_binaries() {
  log "== building (release): load_server, load_tokens, peer-jwt-authorizer"
  cargo build --release -q -p benches --bin load_server --bin load_tokens
  # Its own workspace and target dir (benches/peer-jwt-authorizer/target): axum 0.7 and
  # jsonwebtoken 9 never enter the workspace's lock file or build.
  cargo build --release -q --manifest-path "$PEER_DIR/Cargo.toml"
}

# ensure_tokens: TOKEN_FILE and JWKS in OUT, reused while less than an hour old (they
# expire after two) and at least TOKENS of them; minted afresh otherwise
ensure_tokens() {
  if ! reusable_tokens; then
    log "== minting $TOKENS RS256 tokens (about 1 ms each, on every core)"
    "$TOKEN_MINTER" --out "$OUT" --count "$TOKENS" --issuer "$ISSUER" --audience "$AUDIENCE" >&2
  fi
}

reusable_tokens() {
  [ -f "$OUT/minted_at" ] && [ -f "$TOKEN_FILE" ] && [ -f "$JWKS" ] || return 1
  local age lines
  age=$(($(date +%s) - $(cat "$OUT/minted_at")))
  lines=$(wc -l <"$TOKEN_FILE")
  [ "$age" -lt 3600 ] && [ "$lines" -ge "$TOKENS" ] || return 1
  log "== reusing $lines tokens minted ${age}s ago in $OUT"
}

# ---- servers ------------------------------------------------------------------------------
# Every server of a section runs at once, each on its own port; only the one under load
# uses CPU. Runs of different servers then alternate every few seconds, so the slow drift
# of a shared machine hits all of them alike, and each round's ratios compare neighbours.
declare -A SERVER_PID=() SERVER_PORT=() # by server ID
NEXT_PORT= # the port of the next server; PORT after stop_servers

# start_server ID CPUS WORKERS FRAMEWORK MODE [CAPACITY]: a server for ID on the next
# port, pinned to CPUS, logging to OUT/server-ID.log; returns once it answers
start_server() {
  local id=$1 cpus=$2 workers=$3 framework=$4 mode=$5 capacity=${6:-$CACHE_CAPACITY}
  local port=${NEXT_PORT:-$PORT}
  NEXT_PORT=$((port + 1))
  local server_log=$OUT/server-${id//\//_}.log
  local cmd
  if [ "$mode" = jwt-authorizer ]; then
    cmd=("$PEER" --bind "$HOST:$port" --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --workers "$workers")
  else
    cmd=("$SERVER" --framework "$framework" --auth "$mode" --workers "$workers" --bind "$HOST:$port"
      --jwks "$JWKS" --issuer "$ISSUER" --audience "$AUDIENCE" --cache-capacity "$capacity")
  fi
  if answers "$port"; then
    log "something already answers on $HOST:$port; stop it or set PORT"
    exit 1
  fi
  taskset -c "$cpus" "${cmd[@]}" >"$server_log" 2>&1 &
  SERVER_PID[$id]=$!
  SERVER_PORT[$id]=$port
  if ! wait_ready "${SERVER_PID[$id]}" "$port"; then
    log "server did not start: ${cmd[*]}"
    cat "$server_log" >&2
    exit 1
  fi
}

# answers PORT: whether a server answers GET /rss there
answers() { curl -fs -o /dev/null "http://$HOST:$1/rss"; }

# wait_ready PID PORT: success once PORT answers while PID lives; gives up after 10 s or
# as soon as PID has exited
wait_ready() {
  local pid=$1 port=$2
  for _ in $(seq 1 100); do
    if answers "$port" && kill -0 "$pid" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# warm ID: one second of the first token repeated, output discarded
warm() {
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNECTIONS" -d1s -s "$LUA" "http://$HOST:${SERVER_PORT[$1]}/" -- "$TOKEN_FILE" 1 >/dev/null 2>&1
}

# start_warm_server: start_server's arguments; the server started, then warmed
start_warm_server() {
  start_server "$@"
  warm "$1"
}

# stop_servers: TERM every server, KILL any still there after 5 s; ports start at PORT again
stop_servers() {
  local pid
  for pid in "${SERVER_PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PID[@]}"; do
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PID=()
  SERVER_PORT=()
  NEXT_PORT=
  # let the ports' connections drain
  sleep 0.3
}

# ---- measurements ---------------------------------------------------------------------------

# server_ticks PID: user + sys CPU time of PID, in clock ticks
server_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# server_status PID FIELD: a /proc/PID/status field (VmRSS, VmHWM: KiB)
server_status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# wrk_run KEY ID CPUS SECONDS LIMIT [START]: one wrk run against server ID, pinned to
# CPUS; appends "KEY rps p50_us p99_us non2xx requests srv_cpu_s wrk_cpu_s" to RESULTS.
# LIMIT 1 = one repeated token; LIMIT N = cycle through the first N tokens, from START.
wrk_run() {
  local key=$1 id=$2 cpus=$3 seconds=$4 limit=$5 start=${6:-0}
  local pid=${SERVER_PID[$id]} port=${SERVER_PORT[$id]}
  local raw=$OUT/wrk-${key//\//_}.txt
  local t0 t1 TIMEFORMAT='%U %S'
  t0=$(server_ticks "$pid")
  { time taskset -c "$cpus" wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --latency -s "$LUA" \
    "http://$HOST:$port/" -- "$TOKEN_FILE" "$limit" "$start" >"$raw" 2>&1; } 2>"$raw.time"
  t1=$(server_ticks "$pid")
  wrk_summary "$key" "$raw" $((t1 - t0)) "$(cat "$raw.time")" >>"$RESULTS"
  if grep -q "Non-2xx" "$raw"; then
    log "   !! $key: $(grep Non-2xx "$raw")"
  fi
}

# wrk_summary KEY WRK_OUTPUT SERVER_TICKS "WRK_USER WRK_SYS": the RESULTS line of one run
wrk_summary() {
  awk -v key="$1" -v srv="$3" -v tck="$CLK_TCK" -v wrkt="$4" '
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
    }' "$2"
}

# last_requests: the request count of the last wrk_run
last_requests() { tail -1 "$RESULTS" | awk '{print $6}'; }

# ---- ordering -------------------------------------------------------------------------------

# modes_for FRAMEWORK: its auth modes (jwt-authorizer runs on axum)
modes_for() {
  if [ "$1" = axum ]; then echo "off cache nocache jsonwebtoken jwt-authorizer"; else echo "off cache nocache jsonwebtoken"; fi
}

# in_order ROUND WORDS...: the words forward in odd rounds, backward in even ones
in_order() {
  local round=$1
  shift
  if [ $((round % 2)) -eq 0 ]; then printf '%s\n' "$@" | tac | tr '\n' ' '; else echo "$*"; fi
}

# ---- report ---------------------------------------------------------------------------------

# rss_row FRAMEWORK CAPACITY BEFORE_KIB AFTER_KIB PEAK_KIB REQUESTS STATS: a memory table row
rss_row() {
  awk -v fw="$1" -v cap="$2" -v a="$3" -v b="$4" -v h="$5" -v sent="$6" -v st="$7" \
    'BEGIN { printf "%-6s %9d %9.1f %9.1f %9.1f %9d   %s", fw, cap, a / 1024, b / 1024, h / 1024, sent, st }'
}

# print_report: the whole report on stdout: machine, matrix and scaling tables, memory
print_report() {
  echo "HTTP load bench, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(uname -r), load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), tokens: RS256 2048-bit, $(head -1 "$TOKEN_FILE" | wc -c) bytes"
  report_tables
  if [ ${#RSS_LINES[@]} -gt 0 ]; then
    echo
    echo "== memory: $TOKENS distinct tokens through the cache-on server (1 worker); VmRSS before (warm, 1 token) / after, VmHWM"
    printf '%-6s %9s %9s %9s %9s %9s   %s\n' fw capacity "MiB pre" "MiB post" "MiB peak" requests "server stats after (counters include the warm-up)"
    printf '%s\n' "${RSS_LINES[@]}"
  fi
  echo
  echo "raw results: $RESULTS (key rps p50_us p99_us non2xx requests server_cpu_s wrk_cpu_s); wrk outputs beside it"
}

# report_tables: the matrix, targets and scaling tables, from RESULTS. Matrix keys are
# m/FW/MODE/TOKENS/ROUND, scaling keys s/FW/MODE-TOKENS/WORKERS/ROUND.
report_tables() {
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
