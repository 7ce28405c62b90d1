#!/bin/sh
# The image's entrypoint: optional preflight (FLUXION_PREFLIGHT=true), then the command.
set -e
if [ "${FLUXION_PREFLIGHT:-false}" = "true" ]; then
  node /app/bin/fluxion.ts doctor --skip-stores
fi
exec node /app/bin/fluxion.ts "$@"
