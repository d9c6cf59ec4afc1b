# The edge image: `edge-host` serving the edge component (wasm32-wasip2) that its build script compiles and embeds.
# Build from the repository root: docker build -f infra/docker/edge-host.Dockerfile -t song-comments/edge-host .

FROM rust:1.95-slim-bookworm AS builder
# edge/host's build.rs builds the guest crate for wasm32-wasip2.
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p edge-host \
    && install -D -m 0755 target/release/edge-host /out/edge-host

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /out/edge-host /usr/local/bin/edge-host
COPY infra/docker/http-probe /usr/local/bin/http-probe
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["http-probe", "8000", "/healthz"]
ENTRYPOINT ["edge-host"]
CMD ["--listen", "0.0.0.0:8000", "--var", "origins=http://nginx:8100"]
