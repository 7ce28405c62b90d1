# The image of every Fluxion process: `docker run fluxion-stream <subcommand>`.
# Node 24 runs the TypeScript sources directly (type stripping): no build step.

# Production dependencies only, resolved in their own stage so the final image carries no
# npm cache and no dev tooling.
FROM node:24-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production
# A smaller young generation: V8 sizes it from the machine's memory, and on a 24 GB host
# it let an extractor's RSS reach ~480 MB for ~100 MB of live heap (bench/extract).
ENV NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY cli ./cli
COPY core ./core
COPY config ./config
COPY schemas ./schemas
COPY sql ./sql
COPY extractors ./extractors
COPY processors ./processors
COPY sinks ./sinks
COPY ops ./ops
COPY simulators ./simulators
COPY scripts/entrypoint.sh ./scripts/entrypoint.sh
# `fluxion` on the PATH (`docker exec <container> fluxion doctor`): bin/fluxion.ts is
# executable with a node shebang, and Node resolves the link to the .ts file it runs.
RUN ln -s /app/bin/fluxion.ts /usr/local/bin/fluxion
# The processors' state stores (FLUXION_STATE_DIR in docker-compose.yml): a named volume
# mounted here takes this directory's owner, so the node user can write it.
RUN mkdir -p /var/lib/fluxion/state && chown node:node /var/lib/fluxion/state
# Never root: the processes need no privilege (ports above 1024, no files outside /tmp and the state volume).
USER node
# FLUXION_PREFLIGHT=true runs `fluxion doctor --skip-stores` before the command (the old
# entrypoint pinged the VPN gateway); a failed preflight exits 1 before the job starts.
ENTRYPOINT ["/app/scripts/entrypoint.sh"]
CMD ["--help"]
