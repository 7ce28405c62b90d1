# The image of every Fluxion process: `docker run fluxion-stream <subcommand>`.
# Node 24 runs the TypeScript sources directly (type stripping): no build step.
FROM node:24-slim
ENV NODE_ENV=production
# A smaller young generation: V8 sizes it from the machine's memory, and on a 24 GB host
# it let an extractor's RSS reach ~480 MB for ~100 MB of live heap (bench/extract).
ENV NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
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
USER node
ENTRYPOINT ["node", "/app/bin/fluxion.ts"]
CMD ["--help"]
