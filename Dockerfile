# syntax=docker/dockerfile:1
# Build stage: install everything, compile TypeScript, then keep only production dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY lib ./lib
COPY test ./test
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

# Runtime: slim image, non-root user, config at /etc/baton/baton.yaml.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/baton
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/lib ./dist/lib
COPY --from=build /app/bin ./bin
COPY conf/baton.container.yaml /etc/baton/baton.yaml
RUN mkdir -p /run/baton && chown node:node /run/baton
USER node
EXPOSE 8080
# QUIT drains: in-flight requests finish, keep-alive clients get Connection: close.
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD node -e "require('http').get('http://127.0.0.1:9901/status',r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
ENTRYPOINT ["node", "/opt/baton/bin/baton"]
CMD ["-c", "/etc/baton/baton.yaml"]
