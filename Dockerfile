# The incasso image the Helm chart runs: `docker build -t incasso:0.1.0 .`
# Build stage: the release binary. The protobuf descriptors are compiled by protox (pure
# Rust), so no protoc is needed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p incasso-server --bin incasso \
    && install -D -m 0555 target/release/incasso /out/incasso

# Run stage: glibc and CA certificates only, no shell, no package manager; uid 65532
# ("nonroot"), the user the chart's securityContext names.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/incasso /usr/local/bin/incasso
USER 65532:65532
# gRPC, SOAP /paForNode, admin (/livez, /readyz, /metrics).
EXPOSE 50051 8080 9090
ENTRYPOINT ["/usr/local/bin/incasso"]
CMD ["serve"]
