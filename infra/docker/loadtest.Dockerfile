# The load generator image (`loadtest run`, `loadtest merge`), with the repository's scenarios under /usr/share/loadtest/scenarios.
# Build from the repository root: docker build -f infra/docker/loadtest.Dockerfile -t song-comments/loadtest .

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p loadtest \
    && install -D -m 0755 target/release/loadtest /out/loadtest

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 /results
COPY --from=builder /out/loadtest /usr/local/bin/loadtest
COPY loadtest/scenarios /usr/share/loadtest/scenarios
USER 10001:10001
WORKDIR /results
# A batch job, not a server: there is nothing for a health check to ask.
HEALTHCHECK NONE
ENTRYPOINT ["loadtest"]
CMD ["run", "/usr/share/loadtest/scenarios/read-heavy.toml", "--out", "/results/loadtest-results.json"]
