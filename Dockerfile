# syntax=docker/dockerfile:1
# One image for every process of the distributed mode: the gateway (the default command), each
# subgraph (`node --import tsx scripts/start-subgraph.ts <name>`) and the provisioning job
# (`node --import tsx scripts/provision.ts`). TypeScript runs through tsx, a runtime
# dependency, so nothing is compiled: the image holds the sources that the tests ran. The one
# build step bundles the schema explorer (below).
ARG NODE_IMAGE=node:20-bookworm-slim

# Production dependencies only, installed exactly from the lockfile. A stage of its own so the
# layer is reused while package.json and package-lock.json do not change.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY schema ./schema
COPY platform ./platform
COPY subgraphs ./subgraphs
COPY gateway ./gateway
COPY scripts ./scripts
# The schema explorer (GraphiQL), bundled here into dist/explorer, which the gateway reads
# (EXPLORER_ASSETS_DIR) instead of bundling it on first open: esbuild grows to ~425 MB doing
# that, beside a gateway whose pod has 512 Mi (deploy/). Root-owned and read-only, like the sources.
RUN npm run explorer:build
ENV EXPLORER_ASSETS_DIR=dist/explorer
# /data: local blobs and the local mailbox (a volume in docker-compose, an emptyDir in
# Kubernetes). The sources stay root-owned and read-only to the process.
RUN mkdir -p /data && chown node:node /data
# The `node` user of the base image, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 4000
CMD ["node", "--import", "tsx", "scripts/start-gateway.ts"]
