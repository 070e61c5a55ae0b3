#!/usr/bin/env bash
# Makes sure everything the test suite talks to is installed and running on 127.0.0.1:
# PostgreSQL, Redis, RabbitMQ (+ consistent-hash exchange plugin), Chromium for browser tests.
# The S3 server (moto) is started by the tests themselves. Idempotent; safe to run again.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
have pg_ctlcluster || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have rabbitmq-server || missing+=(rabbitmq-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {  # bounded wait for a port to accept connections
  local port=$1 name=$2
  for _ in $(seq 1 120); do port_open "$port" && return 0; sleep 0.5; done
  log "$name did not come up on port $port" >&2; return 1
}

if ! port_open 5432; then
  log "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start
fi
wait_port 5432 PostgreSQL

if ! port_open 6379; then
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_port 6379 Redis

# Every quorum queue holds file handles; the default 1024 stalls a busy test broker. The Debian
# wrapper starts the node through `su rabbitmq`, where pam_limits applies: raise it there.
limits=/etc/security/limits.d/rabbitmq-xypr.conf
if [ -d /etc/security/limits.d ] && [ ! -f "$limits" ]; then
  printf 'rabbitmq soft nofile 20000\nrabbitmq hard nofile 20000\n' | $SUDO tee "$limits" >/dev/null
fi
if ! port_open 5672; then
  log "starting RabbitMQ"
  $SUDO rabbitmq-server -detached
fi
wait_port 5672 RabbitMQ
# The plugin list is read by the running node; enabling is idempotent.
if ! $SUDO rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_consistent_hash_exchange; then
  log "enabling rabbitmq_consistent_hash_exchange"
  for _ in $(seq 1 30); do
    $SUDO rabbitmq-plugins enable rabbitmq_consistent_hash_exchange >/dev/null 2>&1 && break
    sleep 2
  done
fi
$SUDO rabbitmq-plugins list -e -m | grep -qx rabbitmq_consistent_hash_exchange \
  || { log "could not enable rabbitmq_consistent_hash_exchange" >&2; exit 1; }
log "PostgreSQL, Redis, RabbitMQ and Chromium are ready"
