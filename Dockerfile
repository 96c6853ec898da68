# The user-purge image: a glibc release build on distroless/cc, run as the
# numeric non-root user 65532 with no shell and no package manager.
#
#   docker build -t user-purge:0.1.0 .
#
# tests/deploy.rs checks this file against the crate (binary name, path, user,
# entrypoint), and scripts/check-deploy runs the `cargo build` line below
# verbatim, so a broken release build fails scripts/test.

# Bookworm in both stages: the binary links against glibc, and the runtime's
# glibc (distroless/cc-debian12 is Debian 12) must be no older than the builder's.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# --locked: build exactly Cargo.lock. An explicit --target pins the triple the
# image is for. Stripping the symbol table takes megabytes off the image; panics
# still print their message.
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu --config profile.release.strip=true

# cc, not static: the binary is dynamically linked against glibc and libgcc_s.
# The image carries the CA certificates that TLS to Google and MySQL needs.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-gnu/release/user-purge /usr/local/bin/user-purge
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/user-purge"]
