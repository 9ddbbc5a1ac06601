#!/usr/bin/env bash
# The one-command demo: builds rai, starts Redis (loopback) and one raid process (a worker with the fs store and the
# Redis queue, and the embedded gateway on loopback), makes a demo account and a gateway key with rai-keygen, submits
# examples/hello through the gateway, streams its output, downloads /build, and stops everything it started. Needs Docker present or installable (Debian). Nothing outside .stack/demo is touched.
#
#   deploy/local/demo.sh

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
demo="$RAI_STACK_DIR/demo"
raid_pid=""
cleanup() {
  [ -n "$raid_pid" ] && kill -TERM "$raid_pid" 2>/dev/null && wait "$raid_pid" 2>/dev/null
  stop_redis demo-redis
  stop_docker_if_started
}
trap cleanup EXIT

command -v cargo >/dev/null || die "cargo is not installed (install Rust 1.95 or newer with rustup)"
ensure_redis_installed
ensure_docker
ensure_test_image
log "building rai, raid and rai-keygen"
cargo build --locked -q -p rai-client -p raid-server -p rai-keygen
bin="$RAI_REPO_ROOT/target/debug"

rm -rf "$demo" && mkdir -p "$demo/home" "$demo/store" "$demo/jobs"
port=$(start_redis demo-redis)
"$bin/rai-keygen" --registry "$demo/registry.yml" new -u demo -e demo@example.edu -f Demo -l Student -t demo \
  -o "$demo/home/.rai_profile" >/dev/null
"$bin/rai-keygen" gateway-key --out "$demo/gateway.key" >/dev/null
gateway_port=$(free_port)
cat >"$demo/config.yml" <<YAML
events: { redis_url: "redis://127.0.0.1:$port" }
queue: { backend: redis, name: demo }
store: { backend: fs, path: "$demo/store" }
raid:
  name: demo-worker
  queues: [demo]
  images: ["$RAI_TEST_IMAGE"]
  gpus: []
  registry: "$demo/registry.yml"
  work_dir: "$demo/jobs"
gateway:
  listen: "127.0.0.1:$gateway_port"
  attestation_key: "$demo/gateway.key"
  queues: [demo]
YAML
# The student's whole config: where the gateway is, and the queue.
cat >"$demo/home/.rai_config.yml" <<YAML
client: { gateway: "http://127.0.0.1:$gateway_port" }
queue: { name: demo }
YAML

log "starting raid (worker and embedded gateway)"
HOME="$demo" "$bin/raid" -c "$demo/config.yml" 2>"$demo/raid.log" &
raid_pid=$!
wait_for 30 "raid's gateway" grep -q "gateway listening on" "$demo/raid.log" \
  || die "raid did not start (see $demo/raid.log)"

log "rai -p examples/hello"
set +e
HOME="$demo/home" "$bin/rai" -p examples/hello 2> >(tee "$demo/rai.stderr" >&2)
code=$?
set -e
job=$(sed -n 's/^✱ Job \([0-9a-z]*\) .*/\1/p' "$demo/rai.stderr" | head -n 1)
[ "$code" = 0 ] || die "the demo job failed with exit code $code (raid's log: $demo/raid.log)"
HOME="$demo/home" "$bin/rai" download "$job" -o "$demo/build"
log "/build of job $job landed in $demo/build:"
ls -l "$demo/build"
cat "$demo/build/result.txt"
