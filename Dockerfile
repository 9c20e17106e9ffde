# The operator's image: `image-policy run` as the distroless "nonroot" user (65532).
#
#   docker build -t registry.example.org/platform/image-policy:0.1.0 .
#
# The development machines and CI have no container engine, so this file is not built or
# tested there; build it where Docker, Podman or BuildKit is available. The Helm chart
# (charts/image-policy-webhook, values image.repository/tag/digest) runs the image.

# The binary links glibc dynamically (and aws-lc, built by its C compiler), so the runtime
# image is distroless/cc, which ships glibc and libgcc and nothing else: no shell, no
# package manager. A musl build could use distroless/static instead.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crd crd
COPY operator operator
COPY e2e e2e
RUN cargo build --release --locked -p image-policy \
 && install -D -m 0755 target/release/image-policy /out/image-policy

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/image-policy /usr/local/bin/image-policy
# The chart's securityContext repeats this (runAsNonRoot, runAsUser 65532) and mounts
# nothing writable: the process needs no writable filesystem.
USER 65532:65532
# 8443: the HTTPS admission webhook; 8080: /healthz, /readyz and /metrics over plain HTTP.
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/image-policy"]
CMD ["run", "--tls-cert-file=/etc/image-policy/tls/tls.crt", "--tls-key-file=/etc/image-policy/tls/tls.key"]
