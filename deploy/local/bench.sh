#!/usr/bin/env bash
# The benchmark command: starts the local stack (as test.sh does), then prints every figure beside its reference and
# target in one run. Release builds; the first run compiles for several minutes.
#
#   deploy/local/bench.sh

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"
cleanup() { stop_redis bench-redis; stop_moto; stop_docker_if_started; }
trap cleanup EXIT

ensure_redis_installed
ensure_moto_installed
command -v zstd >/dev/null || apt_install zstd
redis_port=$(start_redis bench-redis)
moto_port=$(start_moto)
export_test_env "$redis_port" "$moto_port"

cargo bench --locked -p rai-common --bench archive
cargo bench --locked -p rai-backends --bench backends
ensure_docker
ensure_test_image
cargo bench --locked -p raid-server --bench overhead
cargo bench --locked -p raid-server --bench gpu
# The client bench runs the `raid` binary beside `rai`: build it first.
cargo build --release --locked -p raid-server --bins
cargo bench --locked -p rai-client --bench client
cargo bench --locked -p rai-client --bench gateway
