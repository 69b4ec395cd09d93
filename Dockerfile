# syntax=docker/dockerfile:1
# NetRaven: multi-stage build. The first stage compiles the release binary (stripped by the
# release profile); the runtime stage is Debian slim with only the shared libraries the binary
# links (OpenSSL for libssh2 and TLS, CA certificates) and runs as an unprivileged user.
#
#   docker build -t netraven .
#   docker run --rm -p 8000:8000 -v netraven-data:/var/lib/netraven netraven serve
#
# See deploy/compose.yaml for the distributed roles (api, scheduler, workers) with PostgreSQL
# and Redis.

FROM rust:1.88-bookworm AS build
WORKDIR /src
# The commit shown by `netraven --version` (.git is not sent to the build).
ARG NETRAVEN_GIT_COMMIT=unknown
ENV NETRAVEN_GIT_COMMIT=${NETRAVEN_GIT_COMMIT}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config cmake \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p netraven-bin \
 && install -m 0755 target/release/netraven /usr/local/bin/netraven

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 netraven \
 && useradd --system --uid 10001 --gid netraven --home-dir /var/lib/netraven --shell /usr/sbin/nologin netraven \
 && install -d -o netraven -g netraven -m 0750 /var/lib/netraven
COPY --from=build /usr/local/bin/netraven /usr/local/bin/netraven
USER 10001:10001
WORKDIR /var/lib/netraven
ENV NETRAVEN_DATA_DIR=/var/lib/netraven \
    NETRAVEN_API_LISTEN=0.0.0.0:8000 \
    NETRAVEN_LOG_FORMAT=json
EXPOSE 8000
VOLUME ["/var/lib/netraven"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/api/health || exit 1
ENTRYPOINT ["/usr/local/bin/netraven"]
CMD ["serve"]
