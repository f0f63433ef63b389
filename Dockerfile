# syntax=docker/dockerfile:1
# sluice container image: `docker build -t ghcr.io/sluice-dev/sluice:0.1.0 .`
#
# Build stage: the toolchain rust-toolchain.toml pins (1.95.0), the locked dependency graph,
# the release profile. The same `sluice` binary `cargo test` builds and runs, optimized.
FROM rust:1.95.0-slim-bookworm AS build
# Use the image's toolchain as is: the components rust-toolchain.toml lists for developers
# (rustfmt, clippy) are not needed to build, and nothing is downloaded at build time but crates.
ENV RUSTUP_TOOLCHAIN=1.95.0 \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
 && install -D -m 0755 target/release/sluice /out/sluice

# Runtime stage: glibc, libgcc and CA certificates, no shell, no package manager, and the
# unprivileged user 65532 ("nonroot") that the Helm chart also runs as.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
USER 65532:65532
# 8080 HTTP and 8443 TLS listeners (the chart's defaults; pools choose their ports), 9090 admin.
EXPOSE 8080 8443 9090
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["controller"]
