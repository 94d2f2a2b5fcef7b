# syntax=docker/dockerfile:1
# baton in a container. Build: docker build -t baton .   Run: docker run -p 8080:8080 baton
#
# Build stage: compile and pack with scripts/release, exactly the package a server installs, then install it
# globally into /opt/baton (production dependencies only, pinned by the package's npm-shrinkwrap.json).
# Node 24 (LTS), an exact release: bump it together with CI's Node 24 (.ci/run); pin a digest for reproducible builds.
FROM node:24.20.0-trixie-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json README.md ./
COPY bin ./bin
COPY lib ./lib
COPY conf ./conf
COPY scripts ./scripts
COPY native ./native
# gcc and libc headers, in this stage only: the build compiles native/malloc-trim.c (what a quiet worker calls to give
# glibc's freed memory back; README "Memory") against the image's Node headers. The runtime image gets the result.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && npm ci --no-audit --no-fund \
 && test -f dist/native/malloc-trim.node \
 && scripts/release --no-build --out /pkg \
 && npm install -g --prefix /opt/baton --no-audit --no-fund /pkg/baton-proxy-*.tgz

# Runtime: the same slim image, the installed package, the non-root node user, config at /etc/baton/baton.yaml.
FROM node:24.20.0-trixie-slim
ENV NODE_ENV=production
ENV PATH=/opt/baton/bin:$PATH
COPY --from=build /opt/baton /opt/baton
COPY conf/baton.container.yaml /etc/baton/baton.yaml
RUN mkdir -p /run/baton && chown node:node /run/baton
USER node
EXPOSE 8080
# QUIT drains: in-flight requests finish, keep-alive clients get Connection: close.
STOPSIGNAL SIGQUIT
# /healthz on the main listener through bash's /dev/tcp (conf/healthcheck): no 45 MB node process every 10 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
  CMD ["bash", "/opt/baton/lib/node_modules/baton-proxy/conf/healthcheck", "127.0.0.1", "8080", "/healthz"]
ENTRYPOINT ["node", "/opt/baton/bin/baton"]
CMD ["-c", "/etc/baton/baton.yaml"]
