#!/bin/bash
# Carried from the group's proven CI scripts; the test fixture in tests/integration/conftest.py runs it.
# Idempotent throwaway PostgreSQL 15 cluster under $STATE/pg (port 5433, owned by user postgres),
# with role "exp"/"exp-pw" and databases "mlflow", "optuna". Stop with pg-down.sh.
set -euo pipefail
STATE=${LABKIT_SERVICES_DIR:-/tmp/labkit-services}; mkdir -p "$STATE"; PGDIR=$STATE/pg; PORT=${LABKIT_PG_PORT:-5433}
BIN=/usr/lib/postgresql/15/bin
[ -x $BIN/initdb ] || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
install -d -o postgres -g postgres "$PGDIR"
if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
  runuser -u postgres -- $BIN/initdb -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$PGDIR/initdb.log"
fi
if ! runuser -u postgres -- $BIN/pg_ctl -D "$PGDIR/data" status >/dev/null 2>&1; then
  runuser -u postgres -- $BIN/pg_ctl -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
fi
psql_() { runuser -u postgres -- psql -h "$PGDIR" -p $PORT -v ON_ERROR_STOP=1 -Atq "$@"; }
[ "$(psql_ -c "select 1 from pg_roles where rolname='exp'")" = 1 ] || psql_ -c "CREATE ROLE exp LOGIN PASSWORD 'exp-pw'"
for db in mlflow optuna; do
  [ "$(psql_ -c "select 1 from pg_database where datname='$db'")" = 1 ] || psql_ -c "CREATE DATABASE $db OWNER exp"
done
echo "postgres up: pid $(head -1 "$PGDIR/data/postmaster.pid"), postgresql+psycopg2://exp:exp-pw@127.0.0.1:$PORT/{mlflow,optuna}"
