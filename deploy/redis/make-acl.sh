#!/usr/bin/env bash
# Writes a Redis ACL file from users.acl with real passwords.
#   deploy/redis/make-acl.sh RAID_PASSWORD GATEWAY_PASSWORD > /etc/redis/rai-users.acl
# The raid password goes (encrypted with rai-crypto) into the workers' config as events.redis_url, the gateway
# password into the gateways' config. Students get no Redis account: they talk to the gateway.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 RAID_PASSWORD GATEWAY_PASSWORD" >&2; exit 2; }
case "$1$2" in *[[:space:]]*) echo "passwords may not contain spaces" >&2; exit 2 ;; esac
sed -e "s|>CHANGE_ME_RAID_PASSWORD|>$1|" -e "s|>CHANGE_ME_GATEWAY_PASSWORD|>$2|" "$(dirname "$0")/users.acl"
