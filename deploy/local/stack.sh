#!/usr/bin/env bash
# Starts or stops the local services for development by hand, and prints their environment.
#
#   eval "$(deploy/local/stack.sh up)"   # start Redis, moto, chromedriver, Docker and the test image; export addresses
#   cargo test -p rai-common             # then run any test directly
#   deploy/local/stack.sh down           # stop them

source "$(dirname "$0")/lib.sh"

case "${1:-}" in
  up)
    ensure_redis_installed; ensure_moto_installed; ensure_aiosmtpd_installed; ensure_chromium_installed; ensure_tcpdump_installed
    ensure_docker; ensure_test_image; ensure_debian_image
    redis_port=$(start_redis test-redis)
    moto_port=$(start_moto)
    webdriver_port=$(start_chromedriver)
    cat <<ENV
export RAI_TEST_REDIS_URL=redis://127.0.0.1:$redis_port
export RAI_TEST_REDIS_SERVER=$(command -v redis-server)
export RAI_TEST_MOTO_PYTHON=$RAI_CACHE_DIR/moto-venv/bin/python
export RAI_TEST_AWS_ENDPOINT=http://127.0.0.1:$moto_port
export RAI_TEST_WEBDRIVER=http://127.0.0.1:$webdriver_port
export RAI_TEST_SMTP_PYTHON=$RAI_CACHE_DIR/moto-venv/bin/python
export RAI_TEST_IMAGE=$RAI_TEST_IMAGE
export RAI_TEST_STACK=1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
ENV
    ;;
  down) stop_redis test-redis; stop_moto; stop_chromedriver; stop_docker_if_started ;;
  *) die "usage: $0 up|down" ;;
esac
