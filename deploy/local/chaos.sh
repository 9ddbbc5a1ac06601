#!/usr/bin/env bash
# The chaos and load run (issue 6): on each stack, 3 raid workers and 20 students run JOBS jobs (default 1000) of
# mixed kinds while workers are killed and drained, Redis restarts and moto pauses; then everything is checked.
# Bounded: each stack's run fails if it takes more than 10 minutes. Everything runs on loopback.
#
#   deploy/local/chaos.sh [JOBS]

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
cleanup() { stop_redis chaos-redis; stop_moto; stop_docker_if_started; }
trap cleanup EXIT

ensure_redis_installed
ensure_moto_installed
ensure_docker
ensure_test_image
redis_port=$(start_redis chaos-redis)
moto_port=$(start_moto)
export_test_env "$redis_port" "$moto_port"

cargo build --release --locked -p raid-server --bins
cargo bench --locked -p rai-client --bench chaos -- "${1:-1000}"
