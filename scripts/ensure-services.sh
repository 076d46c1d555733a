#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis answer; start them if they do not.
# Honours CAD_DATABASE_URL / CAD_REDIS_URL only for the message: the servers started here
# are the machine's standard ones on 5432 and 6379.
set -u

pg_ok() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_ok() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! command -v pg_isready >/dev/null || ! command -v redis-server >/dev/null; then
  echo "PostgreSQL or Redis is not installed. On Debian: apt-get install -y postgresql redis-server" >&2
  exit 1
fi

if ! pg_ok; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432: starting it"
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_ok && break; sleep 1; done
  if ! pg_ok; then
    echo "PostgreSQL still does not answer. Start it yourself:" >&2
    echo "  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start" >&2
    echo "or point CAD_DATABASE_URL at a running server." >&2
    exit 1
  fi
fi

if ! redis_ok; then
  echo "Redis is not answering on 127.0.0.1:6379: starting it"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 20); do redis_ok && break; sleep 0.5; done
  if ! redis_ok; then
    echo "Redis still does not answer. Start it yourself:" >&2
    echo "  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no" >&2
    exit 1
  fi
fi
echo "PostgreSQL and Redis are up"
