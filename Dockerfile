# The image of every Fluxion process: `docker run fluxion-stream <subcommand>`.
# Node 24 runs the TypeScript sources directly (type stripping): no build step.
FROM node:24-slim
ENV NODE_ENV=production
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
