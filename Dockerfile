# The warmpool pool manager, for Railway (or any container platform).
# Build: docker build -t warmpool .   Run: docker run -e DATABASE_URL=… -e POOL_API_KEY=… -e RAILWAY_API_TOKEN=… warmpool
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY examples ./examples
RUN npm ci --no-audit --no-fund && npx tsc -b && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app /app
# Not root: the server needs no privileges (and an embedded Postgres would refuse root anyway).
USER node
EXPOSE 3001
CMD ["node", "packages/server/dist/main.js", "serve"]
