#!/usr/bin/env bash
# A local PostgreSQL for the store tests: `export TEST_DATABASE_URL="$(bash .ci/postgres.sh)"`.
# Idempotent, runs as root (Debian): installs `postgresql` when it is missing, creates and starts the cluster, creates
# the role and the database when they are missing, waits until the server answers on 127.0.0.1, and prints the
# DATABASE_URL to use on stdout (everything else goes to stderr).
# PG_USER, PG_PASSWORD and PG_DATABASE override the names (tabagent / tabagent / tabagent_test).
set -euo pipefail

PG_USER="${PG_USER:-tabagent}"
PG_PASSWORD="${PG_PASSWORD:-tabagent}"
PG_DATABASE="${PG_DATABASE:-tabagent_test}"

say() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "run me as root (I install packages and act as the postgres user)"
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  say "installing postgresql"
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
fi

# The newest installed major version, and its `main` cluster (the package creates it; a bare image may not have).
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
  say "creating cluster $version/main"
  pg_createcluster "$version" main >&2
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"

if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
  say "starting cluster $version/main on port $port"
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.5
done
pg_isready -q -h 127.0.0.1 -p "$port" || { say "the server does not answer on 127.0.0.1:$port"; exit 1; }

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }
# Identifiers and the password are quoted by psql itself (:"name", :'value').
if [ -z "$(echo "SELECT 1 FROM pg_roles WHERE rolname = :'name';" | psql_admin -tA -v name="$PG_USER" || true)" ]; then
  say "creating role $PG_USER"
  psql_admin -v name="$PG_USER" -v pw="$PG_PASSWORD" <<'SQL' >&2
CREATE ROLE :"name" LOGIN PASSWORD :'pw';
SQL
fi
if [ -z "$(echo "SELECT 1 FROM pg_database WHERE datname = :'name';" | psql_admin -tA -v name="$PG_DATABASE" || true)" ]; then
  say "creating database $PG_DATABASE"
  psql_admin -v name="$PG_DATABASE" -v owner="$PG_USER" <<'SQL' >&2
CREATE DATABASE :"name" OWNER :"owner";
SQL
fi

encode() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1" 2>/dev/null || printf '%s' "$1"; }
echo "postgres://$(encode "$PG_USER"):$(encode "$PG_PASSWORD")@127.0.0.1:$port/$(encode "$PG_DATABASE")"
