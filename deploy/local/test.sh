#!/usr/bin/env bash
# The one test command (README, "Test"): on a fresh machine it installs and starts everything the tests need, on
# loopback only, runs every test of the workspace, and stops what it started.
#
#   deploy/local/test.sh [extra cargo test arguments]
#
# It provides: a private redis-server, moto's server (S3, SQS, STS, CloudFormation, Auto Scaling), chromium's
# WebDriver (chromedriver), aiosmtpd (each mail test starts its own), a Docker engine, the local test image
# rai-test/busybox, a minimal Debian image made by debootstrap (cached under ~/.cache/rai), and the packages and
# static client of this commit (deploy/package.sh --quick debs linux-x86_64, into target/packages: unoptimised
# builds; cfn-lint checks the AWS template first). Their addresses reach the tests as RAI_TEST_REDIS_URL,
# RAI_TEST_REDIS_SERVER, RAI_TEST_AWS_ENDPOINT, RAI_TEST_MOTO_PYTHON, RAI_TEST_WEBDRIVER, RAI_TEST_SMTP_PYTHON,
# RAI_TEST_IMAGE, RAI_TEST_DEBIAN_IMAGE, RAI_TEST_DIST. A piece that cannot be set up fails the run; nothing is
# skipped.

source "$(dirname "$0")/lib.sh"
cd "$RAI_REPO_ROOT"

cleanup() {
  stop_redis test-redis
  stop_moto
  stop_chromedriver
  stop_docker_if_started
}
trap cleanup EXIT

command -v cargo >/dev/null || die "cargo is not installed (install Rust 1.95 or newer with rustup)"
ensure_redis_installed
ensure_moto_installed
ensure_aiosmtpd_installed
ensure_chromium_installed
ensure_tcpdump_installed
ensure_docker
ensure_test_image
ensure_debian_image
ensure_cfn_lint_installed
log "cfn-lint deploy/aws/rai-cluster.cfn.json"
"$RAI_CACHE_DIR/moto-venv/bin/cfn-lint" deploy/aws/rai-cluster.cfn.json || die "cfn-lint found problems in deploy/aws/rai-cluster.cfn.json"
# What the package tests install: the packages of this commit, made from the tests' own unoptimised build
# (package.sh --quick says why). Every binary of the run reports this commit, the packages' and the tests' alike,
# so that the two builds are one.
RAI_BUILD_COMMIT=$(git rev-parse --short=12 HEAD)
export RAI_BUILD_COMMIT
deploy/package.sh --quick debs linux-x86_64

redis_port=$(start_redis test-redis)
moto_port=$(start_moto)
webdriver_port=$(start_chromedriver)

export_test_env "$redis_port" "$moto_port" "$webdriver_port"

log "redis $RAI_TEST_REDIS_URL, moto $RAI_TEST_AWS_ENDPOINT, image $RAI_TEST_IMAGE"
# Compiling and running apart, so the log shows how long each took.
log "cargo test --workspace --locked --no-run $*"
cargo test --workspace --locked --no-run "$@"
log "cargo test --workspace --locked $*"
cargo test --workspace --locked "$@"
log "tests done"
