#!/usr/bin/env bash
# Side-by-side load comparison, one run, same small upstream, everything on 127.0.0.1:
#   1. the upstream directly
#   2. nginx as a plain reverse proxy (no auth); nginx_cookie: the same nginx sent the request
#      target 4 sends (its path and session cookie), to tell what the bigger request costs any
#      proxy from what authenticating it costs portcullis
#   3. portcullis on a guest route
#   4. portcullis on an authenticated route: a session cookie from a real (form) login, a
#      policy with a CEL condition, identity headers and a capability token on every request
#   5. examples/bare_proxy.rs: hyper's HTTP/1.1 server and client with nothing else, the floor
#      of this HTTP stack, to tell what hyper costs from what the gateway adds; bare_hyper_auth:
#      the same proxy sent target 4's request and sending upstream what target 4 sends (its
#      X-Forwarded-*, request id, identity and capability headers, captured from the gateway),
#      the floor for the authenticated route with its session, policy and token for free
#   6. with PGO=1, 3 and 4 again through a profile-guided build of the same source
#      (scripts/pgo-build.sh, which trains on this script's load), served side by side, and
#      bare_hyper_pgo / bare_hyper_pgo_auth: 5 built the same way
# The targets run in ROUNDS interleaved rounds (one run of each target per round, every other
# round in reverse order) and each figure is the median over the rounds: a shared 2-core VM
# moves a single run by 10% to 40%, and interleaving spreads a slow spell over all targets
# instead of landing on one.
# Prints requests/s, p50 and p99 for each, the portcullis/nginx ratios (of the medians, and the
# median and range of the ratios within each round), portcullis's peak RSS, and for every
# target the CPU time per 1,000 requests of the server under test (all of it, and its user time
# alone) and the share of the cores it got. The upstream and the nginx proxy are separate nginx
# instances so that nginx's CPU time is its own, and so that every proxy's upstream leg crosses
# to another process. Installs wrk and nginx from Debian if missing.
#
# Cores: by default (PIN=1) wrk and the upstream run on core 0 and the proxy under test on the
# others, so each proxy gets the same whole cores and requests/s compares the work the proxies
# do. With PIN=0 everything floats over all cores, and requests/s then also follows the share of
# the cores the scheduler gives each proxy's threads against wrk's and the upstream's.
#
#   bash benches/load.sh                # 3 rounds of 10 s per target, 64 connections
#   ROUNDS=5 DURATION=30s CONNECTIONS=128 PIN=0 WORKERS=2 PGO=1 bash benches/load.sh
#
# WORKERS is the gateway's `workers:` setting and the nginx proxy's `worker_processes`, both one
# per core the proxy may run on by default (the gateway's own default). TARGETS picks a subset
# of the targets, and GATEWAY another gateway binary to serve with: scripts/pgo-build.sh trains
# its instrumented build so.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PIN=${PIN:-1}
cores=$(nproc)
if [ "$PIN" = 1 ] && [ "$cores" -ge 2 ]; then
  load_cpus=0
  proxy_cpus=1-$((cores - 1))
  # Arrays, not functions: a background job must be the program itself, so that its pid is
  # the one measured and stopped.
  on_load=(taskset -c "$load_cpus")
  on_proxy=(taskset -c "$proxy_cpus")
  proxy_cores=$((cores - 1))
  upstream_workers=1
else
  PIN=0
  on_load=()
  on_proxy=()
  proxy_cores=$cores
  upstream_workers=$cores
fi
WORKERS=${WORKERS:-$proxy_cores}
PGO=${PGO:-0}
GATEWAY=${GATEWAY:-./target/release/portcullis}
BARE=${BARE:-./target/release/examples/bare_proxy}
UPSTREAM_PORT=18081
NGINX_PORT=18082
PORTCULLIS_PORT=18083
BARE_PORT=18084
PGO_PORT=18085
BARE_AUTH_PORT=18086
BARE_PGO_PORT=18087
BARE_PGO_AUTH_PORT=18088
CAPTURE_PORT=18089

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --locked --quiet --bin portcullis --example bare_proxy
[ "$PGO" = 1 ] && bash scripts/pgo-build.sh
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # An instrumented gateway writes its profile as it exits: wait for that, up to 10 s.
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  for conf in upstream proxy; do
    [ -f "$work/$conf.pid" ] && kill "$(cat "$work/$conf.pid")" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The same small response for every target, from an nginx of its own; the nginx proxy is a
# second instance.
nginx_instance() { # name, worker processes, on_load[@] or on_proxy[@]; the http block's servers on stdin
  {
    cat <<EOF
worker_processes $2;
pid $work/$1.pid;
error_log $work/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
EOF
    cat
    echo "}"
  } >"$work/$1.conf"
  "${!3}" "$NGINX" -c "$work/$1.conf" -p "$work" -e "$work/$1-error.log"
}
nginx_instance upstream "$upstream_workers" "on_load[@]" <<EOF
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    location / { default_type text/plain; return 200 "hello from the upstream\n"; }
  }
EOF
nginx_instance proxy "$WORKERS" "on_proxy[@]" <<EOF
  upstream app { server 127.0.0.1:$UPSTREAM_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
EOF

mkdir -p "$work/policies"
cat >"$work/policies/bench.yaml" <<EOF
routes:
  - name: bench
    match: { path: "/**" }
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    rules:
      - name: everyone
        guest: true
  - name: authed
    match: { path: "/authed/**" }
    upstream: http://127.0.0.1:$UPSTREAM_PORT
    rules:
      - name: analysts reading
        allow:
          groups: [analysts]
          when: 'request.method in ["GET", "HEAD"] && user.email.endsWith("@example.com")'
        grants: [read]
EOF
hash=$(printf 'bench-password' | ./target/release/portcullis hash-password)
cat >"$work/users.yaml" <<EOF
users:
  alice:
    password_hash: "$hash"
    email: alice@example.com
    email_verified: true
    groups: [analysts]
EOF
./target/release/portcullis keygen "$work/keys" >/dev/null
cat >"$work/gateway.yaml" <<EOF
listen: 127.0.0.1:$PORTCULLIS_PORT
policies: policies
workers: $WORKERS
session:
  secrets: ["load-benchmark-session-secret-0123456789"]
basic_auth:
  credentials_file: users.yaml
capability:
  keys_dir: keys
EOF
# Every server runs in a session of its own, as nginx's daemon does: with the kernel's scheduler
# autogroups (on by default) a session shares the CPU as one task, so a server left in the
# script's session would split one share with wrk while nginx got a share to itself. (setsid
# runs the program in place: a background job of a script is not a process group leader.)
own_session=(setsid "${on_proxy[@]}")
bare() { # binary, port, log[, headers file]; prints the pid
  "${own_session[@]}" "$1" "127.0.0.1:$2" "127.0.0.1:$UPSTREAM_PORT" ${4:+"$4"} >"$3" 2>&1 &
  echo $!
}
bare_pid=$(bare "$BARE" "$BARE_PORT" "$work/bare.out")
pids+=("$bare_pid")
serve() { # binary, config, log; prints the pid once the gateway listens
  RUST_LOG=warn "${own_session[@]}" "$1" serve --config "$2" >"$3" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$3" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "listening on" "$3" || { cat "$3" >&2; kill "$pid"; exit 1; }
  echo "$pid"
}
portcullis_pid=$(serve "$GATEWAY" "$work/gateway.yaml" "$work/portcullis.out")
pids+=("$portcullis_pid")
pgo_pid=
if [ "$PGO" = 1 ]; then
  sed "s/^listen: .*/listen: 127.0.0.1:$PGO_PORT/" "$work/gateway.yaml" >"$work/gateway-pgo.yaml"
  pgo_pid=$(serve ./target/pgo/portcullis "$work/gateway-pgo.yaml" "$work/portcullis-pgo.out")
  pids+=("$pgo_pid")
fi

# A real login through the form: CSRF cookie and token first, then the session cookie.
jar="$work/cookies.txt"
csrf=$(curl -fsS -c "$jar" -H 'accept: text/html' "http://127.0.0.1:$PORTCULLIS_PORT/oauth2/start?rd=/authed/" |
  sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p')
curl -fsS -b "$jar" -c "$jar" -o /dev/null -H 'accept: text/html' \
  --data-urlencode "csrf_token=$csrf" --data-urlencode username=alice \
  --data-urlencode password=bench-password --data-urlencode rd=/authed/ \
  "http://127.0.0.1:$PORTCULLIS_PORT/oauth2/login"
session=$(awk '$6 ~ /^_portcullis/ {printf "%s%s=%s", sep, $6, $7; sep="; "}' "$jar")
[ -n "$session" ] || { echo "login failed: no session cookie" >&2; exit 1; }

# What the authenticated route sends upstream besides the client's own headers, for the bare
# proxy to send: a gateway of the same config (secrets, keys) with the route's upstream swapped
# for builtin:whoami, which answers with the headers it received, asked with the same cookie.
mkdir -p "$work/capture/policies"
sed "s|^listen: .*|listen: 127.0.0.1:$CAPTURE_PORT|; s|^policies: .*|policies: capture/policies|" \
  "$work/gateway.yaml" >"$work/gateway-capture.yaml"
awk -v up="http://127.0.0.1:$UPSTREAM_PORT" '/name: authed/ { authed = 1 } authed && $1 == "upstream:" { sub(up, "builtin:whoami") } { print }' \
  "$work/policies/bench.yaml" >"$work/capture/policies/bench.yaml"
capture_pid=$(serve ./target/release/portcullis "$work/gateway-capture.yaml" "$work/capture.out")
pids+=("$capture_pid")
curl -fsS -H "cookie: $session" "http://127.0.0.1:$CAPTURE_PORT/authed/" | python3 -c '
import json, sys
for name, value in json.load(sys.stdin)["headers"].items():
    if name not in ("host", "user-agent", "accept", "cookie"):
        print(f"{name}: {value}")' >"$work/upstream-headers.txt"
kill "$capture_pid"
grep -qi '^x-auth-capability:' "$work/upstream-headers.txt" ||
  { echo "capture: no capability token in what the authenticated route sends:" >&2; cat "$work/upstream-headers.txt" >&2; exit 1; }
bare_auth_pid=$(bare "$BARE" "$BARE_AUTH_PORT" "$work/bare-auth.out" "$work/upstream-headers.txt")
pids+=("$bare_auth_pid")
bare_pgo_pid= bare_pgo_auth_pid=
if [ "$PGO" = 1 ]; then
  bare_pgo_pid=$(bare ./target/pgo/bare_proxy "$BARE_PGO_PORT" "$work/bare-pgo.out")
  bare_pgo_auth_pid=$(bare ./target/pgo/bare_proxy "$BARE_PGO_AUTH_PORT" "$work/bare-pgo-auth.out" "$work/upstream-headers.txt")
  pids+=("$bare_pgo_pid" "$bare_pgo_auth_pid")
fi

# User plus system time of the given processes, then their user time alone, in clock ticks.
cpu_ticks() { for pid in "$@"; do cat "/proc/$pid/stat"; done | awk '{ t += $14 + $15; u += $14 } END { print t, u }'; }
nginx_workers() { pgrep -P "$(cat "$work/$1.pid")" | tr '\n' ' '; }
# Whose CPU time each target measures: the server under test (for `direct`, the upstream).
declare -A measured=(
  [direct]="$(nginx_workers upstream)"
  [nginx]="$(nginx_workers proxy)"
  [nginx_cookie]="$(nginx_workers proxy)"
  [portcullis_guest]=$portcullis_pid
  [portcullis_auth]=$portcullis_pid
  [bare_hyper]=$bare_pid
  [bare_hyper_auth]=$bare_auth_pid
  [bare_hyper_pgo]=$bare_pgo_pid
  [bare_hyper_pgo_auth]=$bare_pgo_auth_pid
  [portcullis_pgo_guest]=$pgo_pid
  [portcullis_pgo_auth]=$pgo_pid
)

# wrk --latency prints "50%  1.23ms"; convert to microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; unit = v; gsub(/[0-9.]/, "", unit);
    if (unit == "us") print n; else if (unit == "ms") print n * 1000; else if (unit == "s") print n * 1000000; else print n
  }'
}

# Per target: the figures of every round, space-separated; requests, seconds and CPU ticks summed.
declare -A rps p50 p99 requests seconds ticks user_ticks
run() {
  local name=$1 url=$2 cookie=${3:-none=1} out before before_user after after_user
  curl -fsS -o /dev/null -H "cookie: $cookie" "$url" || { echo "$name: $url does not answer" >&2; exit 1; }
  # CPU time over the measured run only (the warm-up's requests are not counted).
  # shellcheck disable=SC2086 # a list of pids
  read -r before before_user < <(cpu_ticks ${measured[$name]})
  out=$("${on_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "cookie: $cookie" "$url")
  # shellcheck disable=SC2086
  read -r after after_user < <(cpu_ticks ${measured[$name]})
  ticks[$name]=$((${ticks[$name]:-0} + after - before))
  user_ticks[$name]=$((${user_ticks[$name]:-0} + after_user - before_user))
  rps[$name]+="$(awk '/^Requests\/sec/ {print $2}' <<<"$out") "
  requests[$name]=$((${requests[$name]:-0} + $(awk '/requests in/ {print $1}' <<<"$out")))
  seconds[$name]=$(awk -v s="${seconds[$name]:-0}" '/requests in/ { sub(/s,$/, "", $4); print s + $4 }' <<<"$out")
  p50[$name]+="$(to_us "$(awk '$1 == "50%" {print $2}' <<<"$out")") "
  p99[$name]+="$(to_us "$(awk '$1 == "99%" {print $2}' <<<"$out")") "
  if grep -q "Non-2xx" <<<"$out"; then echo "$name: non-2xx responses:" >&2; grep "Non-2xx\|Socket errors" <<<"$out" >&2; exit 1; fi
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

targets=(direct nginx nginx_cookie portcullis_guest portcullis_auth bare_hyper bare_hyper_auth)
[ "$PGO" = 1 ] && targets+=(portcullis_pgo_guest portcullis_pgo_auth bare_hyper_pgo bare_hyper_pgo_auth)
[ -n "${TARGETS:-}" ] && read -ra targets <<<"$TARGETS"
declare -A url=(
  [direct]="http://127.0.0.1:$UPSTREAM_PORT/"
  [nginx]="http://127.0.0.1:$NGINX_PORT/"
  [nginx_cookie]="http://127.0.0.1:$NGINX_PORT/authed/"
  [portcullis_guest]="http://127.0.0.1:$PORTCULLIS_PORT/"
  [portcullis_auth]="http://127.0.0.1:$PORTCULLIS_PORT/authed/"
  [bare_hyper]="http://127.0.0.1:$BARE_PORT/"
  [bare_hyper_auth]="http://127.0.0.1:$BARE_AUTH_PORT/authed/"
  [bare_hyper_pgo]="http://127.0.0.1:$BARE_PGO_PORT/"
  [bare_hyper_pgo_auth]="http://127.0.0.1:$BARE_PGO_AUTH_PORT/authed/"
  [portcullis_pgo_guest]="http://127.0.0.1:$PGO_PORT/"
  [portcullis_pgo_auth]="http://127.0.0.1:$PGO_PORT/authed/"
)
declare -A cookie=([portcullis_auth]="$session" [portcullis_pgo_auth]="$session" [nginx_cookie]="$session"
  [bare_hyper_auth]="$session" [bare_hyper_pgo_auth]="$session")
for name in "${targets[@]}"; do # warm pools and caches
  "${on_load[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "cookie: ${cookie[$name]:-none=1}" "${url[$name]}" >/dev/null
done
# Every other round runs the targets in reverse order (A B C, C B A, ...), so that a drift of the
# machine's speed during a run does not favour the targets that come first.
reversed=()
for ((i = ${#targets[@]} - 1; i >= 0; i--)); do reversed+=("${targets[i]}"); done
for round in $(seq "$ROUNDS"); do
  order=("${targets[@]}")
  [ $((round % 2)) = 0 ] && order=("${reversed[@]}")
  for name in "${order[@]}"; do
    run "$name" "${url[$name]}" "${cookie[$name]:-none=1}"
  done
done

hz=$(getconf CLK_TCK)
peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$portcullis_pid/status")
# CPU per 1,000 requests in ms; with `user`, user time alone (the rest is the kernel's).
per_1k() {
  local t=${ticks[$1]}
  [ "${2:-}" = user ] && t=${user_ticks[$1]}
  awk -v t="$t" -v hz="$hz" -v n="${requests[$1]}" 'BEGIN { printf "%.1f", (t / hz * 1000) / (n / 1000) }'
}
cpus() { awk -v t="${ticks[$1]}" -v hz="$hz" -v s="${seconds[$1]}" 'BEGIN { printf "%.2f", t / hz / s }'; }

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per target and round, median of $ROUNDS rounds; nginx proxy: worker_processes $WORKERS; portcullis: workers: $WORKERS"
if [ "$PIN" = 1 ]; then
  echo "cores: wrk and the upstream (1 nginx worker) on $load_cpus; the proxy under test on $proxy_cpus"
else
  echo "cores: not pinned; the upstream runs $upstream_workers nginx workers"
fi
printf "%-20s %12s %10s %10s %13s %9s %6s   %s\n" target "requests/s" "p50 (us)" "p99 (us)" "CPU ms/1k req" "of it user" CPUs "requests/s per round"
declare -A median_rps median_p99
for name in "${targets[@]}"; do
  median_rps[$name]=$(median "${rps[$name]}")
  median_p99[$name]=$(median "${p99[$name]}")
  printf "%-20s %12.0f %10.0f %10.0f %13s %9s %6s   %s\n" "$name" "${median_rps[$name]}" "$(median "${p50[$name]}")" \
    "${median_p99[$name]}" "$(per_1k "$name")" "$(per_1k "$name" user)" "$(cpus "$name")" "$(tr ' ' '\n' <<<"${rps[$name]}" | grep . | awk '{ printf "%.0f ", $1 }')"
done
# figures of a target, figures of its baseline (space-separated, one per round): the median of
# the ratios of each round, then the lowest and the highest. A round's two runs are minutes
# apart at most, so their ratio is less moved by the machine's drift than the ratio of medians.
paired() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= n; i++) r[i] = x[i] / y[i];
    for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
    printf "%.2fx (%.2f-%.2f)", r[int((n + 1) / 2)], r[1], r[n]
  }'
}
# target, baseline: the target's requests/s, p99 and CPU per request over the baseline's.
ratios() {
  awk -v n="$1/$2" -v a="${median_rps[$1]}" -v b="${median_rps[$2]}" -v c="${median_p99[$1]}" -v d="${median_p99[$2]}" \
    -v e="$(per_1k "$1")" -v f="$(per_1k "$2")" -v g="$(paired "${rps[$1]}" "${rps[$2]}")" \
    -v h="$(paired "${p99[$1]}" "${p99[$2]}")" \
    'BEGIN { printf "%s: requests/s %.2fx, p99 %.2fx, CPU per request %.2fx; round by round: requests/s %s, p99 %s\n", n, a / b, c / d, e / f, g, h }'
}
for name in "${targets[@]}"; do
  case $name in direct | nginx | nginx_cookie) continue ;; esac
  [ -n "${median_rps[nginx]:-}" ] || break
  ratios "$name" nginx
done
for name in portcullis_auth portcullis_pgo_auth bare_hyper_auth bare_hyper_pgo_auth; do # against nginx sent the same request
  [ -n "${median_rps[$name]:-}" ] && [ -n "${median_rps[nginx_cookie]:-}" ] && ratios "$name" nginx_cookie
done
echo "portcullis: peak RSS $((peak_rss_kib / 1024)) MiB"
if [ -n "$pgo_pid" ]; then
  echo "portcullis (PGO): peak RSS $(($(awk '/VmHWM/ {print $2}' "/proc/$pgo_pid/status") / 1024)) MiB"
fi
echo "CPU: the server under test's user + system time (direct: the upstream nginx's workers; nginx: the proxy's workers); \"of it user\": its user time alone, the rest is the kernel's"
