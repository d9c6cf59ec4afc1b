#!/bin/bash
# Entry point of the origin image: assembles DATABASE_URL and REDIS_URL from parts
# (hosts from the task definition, user and passwords injected from Secrets Manager)
# when they are not given whole, then runs `origin` with the given subcommand.
set -euo pipefail

# Percent-encodes one URL component: generated passwords may hold ':', '@', '/', '%'.
urlencode() {
    local input=$1 encoded='' char hex i
    for ((i = 0; i < ${#input}; i++)); do
        char=${input:i:1}
        case $char in
            [a-zA-Z0-9.~_-]) encoded+=$char ;;
            *) printf -v hex '%%%02X' "'$char"; encoded+=$hex ;;
        esac
    done
    printf '%s' "$encoded"
}

if [[ -z ${DATABASE_URL:-} && -n ${DB_HOST:-} ]]; then
    DATABASE_URL="postgres://$(urlencode "${DB_USER:?DB_USER is needed with DB_HOST}"):$(urlencode "${DB_PASSWORD:?DB_PASSWORD is needed with DB_HOST}")@${DB_HOST}:${DB_PORT:-5432}/${DB_NAME:-songs}"
    export DATABASE_URL
fi

if [[ -z ${REDIS_URL:-} && -n ${REDIS_HOST:-} ]]; then
    scheme=redis
    [[ ${REDIS_TLS:-false} == true ]] && scheme=rediss
    credentials=''
    [[ -n ${REDIS_AUTH_TOKEN:-} ]] && credentials=":$(urlencode "$REDIS_AUTH_TOKEN")@"
    REDIS_URL="${scheme}://${credentials}${REDIS_HOST}:${REDIS_PORT:-6379}"
    export REDIS_URL
fi

# The parts are not needed once the URLs exist; keep them out of the process environment.
unset DB_PASSWORD REDIS_AUTH_TOKEN

# Every subcommand (serve, migrate, seed) reads DATABASE_URL, REDIS_URL and
# JWT_SECRET from the environment, so the URLs never show in the process list.
exec origin "$@"
