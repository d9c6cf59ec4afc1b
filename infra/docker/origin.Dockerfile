# The origin image (`origin serve`): built from the workspace in a Rust builder, run from a small Debian image as a non-root user.
# Build from the repository root: docker build -f infra/docker/origin.Dockerfile -t song-comments/origin .

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target caches make rebuilds incremental; the binary is
# copied out because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p origin-cli \
    && install -D -m 0755 target/release/origin /out/origin

FROM debian:bookworm-slim
# ca-certificates: the TLS clients (ElastiCache, Keyspaces) verify AWS's certificates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /out/origin /usr/local/bin/origin
COPY infra/docker/origin-entrypoint.sh /usr/local/bin/origin-entrypoint
COPY infra/docker/http-probe /usr/local/bin/http-probe
USER 10001:10001
ENV ORIGIN_LISTEN=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["http-probe", "8080", "/healthz"]
ENTRYPOINT ["origin-entrypoint"]
CMD ["serve"]
