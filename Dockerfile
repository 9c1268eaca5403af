# The counter app (examples/counter) with litefs-rs, for Fly.io or any host
# with FUSE. Three stages: Rust builds the `litefs` binary and the Node
# addon, Node installs the app, and a slim runtime gets both.
#
#   docker build -t litefs-counter --build-arg LITEFS_GIT_COMMIT=$(git rev-parse --short HEAD) .
#   docker run --device /dev/fuse --cap-add SYS_ADMIN -v litefs-data:/data -p 8080:8080 \
#     -e FLY_REGION=sjc -e FLY_CONSUL_URL=http://consul:8500 -e FLY_APP_NAME=counter litefs-counter
#
# (fly deploy --config examples/counter/fly/fly.toml does the same on Fly.io.)

# --- litefs and the litefs-rs addon -----------------------------------------
FROM rust:1-bookworm AS rust
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# .git is not in the build context: `litefs version` shows this commit.
ARG LITEFS_GIT_COMMIT=unknown
RUN LITEFS_GIT_COMMIT=$LITEFS_GIT_COMMIT cargo build --release --locked -p litefs-cli -p litefs-node

# --- the counter app's packages ---------------------------------------------
FROM node:20-bookworm AS node
WORKDIR /app
# The app depends on litefs-rs as "file:../..": the package's JS at /app,
# the app at /app/examples/counter, as in the repository.
COPY package.json LICENSE ./
COPY js ./js
COPY --from=rust /src/target/release/liblitefs_node.so /tmp/liblitefs_node.so
RUN cp /tmp/liblitefs_node.so "js/litefs-rs.linux-$(node -p process.arch)-gnu.node"
# examples/ is one npm workspace: its lock file and every member's
# package.json, then only the counter's packages.
COPY examples/package.json examples/package-lock.json ./examples/
COPY examples/counter/package.json ./examples/counter/
COPY examples/counter-prisma/package.json ./examples/counter-prisma/
COPY examples/remix/package.json ./examples/remix/
# The addon is already built (above): litefs-rs's install script skips cargo.
# node-gyp finds this image's Node headers under /usr/local.
RUN cd examples \
 && LITEFS_RS_SKIP_BUILD=1 npm_config_nodedir=/usr/local \
    npm ci --omit=dev --workspace litefs-counter --no-audit --no-fund
COPY examples/counter ./examples/counter

# --- runtime ----------------------------------------------------------------
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse3 ca-certificates sqlite3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=rust /src/target/release/litefs /usr/local/bin/litefs
COPY --from=node /app /app
COPY examples/counter/fly/litefs.yml /etc/litefs.yml
WORKDIR /app/examples/counter
ENV LITEFS_DIR=/litefs DATABASE_FILENAME=counter.db PORT=8081 INTERNAL_PORT=8080
EXPOSE 8080
# litefs mounts LITEFS_DIR, takes or follows the lease, then runs the app
# (`exec` in litefs.yml: node start.js) and forwards signals to it.
ENTRYPOINT ["litefs", "mount"]
