#!/bin/sh
# Write the Docker secrets of docker-compose.yml into ./secrets/ (gitignored): random passwords, the
# admin token, and Caretaker's DSN for the stack's PostgreSQL. Existing files are kept, so running it
# again never changes a password PostgreSQL already uses. Reads POSTGRES_USER/POSTGRES_DB from .env.
set -eu
cd "$(dirname "$0")/.."
[ -f .env ] && . ./.env
umask 077
mkdir -p secrets
chmod 0700 secrets    # other host users stay out...

random() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
create() {            # create NAME VALUE: only when missing
    if [ ! -s "secrets/$1" ]; then
        printf '%s' "$2" > "secrets/$1"
        echo "created secrets/$1"
    fi
}
create caretaker_admin_token "$(random)"
create postgres_password "$(random)"
create grafana_admin_password "$(random)"
create caretaker_pg_dsn "postgresql://${POSTGRES_USER:-caretaker}:$(cat secrets/postgres_password)@postgres:5432/${POSTGRES_DB:-media}"
# ...while the containers' users (caretaker 10001, alertmanager's nobody, grafana 472) can read the
# bind-mounted files: compose without swarm cannot set a secret's owner.
chmod 0644 secrets/*
