# Star Songs image: a release build of `starsongs` on distroless/cc (the binary links
# glibc: Rust's std, and SQLite compiled in by gcc). No shell, no package manager, runs as
# uid 65532, and writes nothing outside /data, so a read-only root filesystem works.
#
#   docker build \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     -t starsongs:0.1.0 .
#
# The builder is Debian 12 (bookworm), like the runtime, so the glibc the binary was
# linked against is the one it runs on.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

# 1. Dependencies. This layer is rebuilt only when Cargo.toml, Cargo.lock or build.rs
#    change: the crate itself is a stub here. Every target named in Cargo.toml (the lib,
#    the binary, the benches) needs a file, or cargo refuses the manifest.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/list_depth.rs \
 && echo 'fn main() {}' > benches/password_hash.rs \
 && cargo build --release --locked --bin starsongs \
 && rm -rf src benches

# 2. The crate. build.rs embeds STARSONGS_GIT_SHA: there is no .git in the build
#    context, so the revision comes in as a build argument.
ARG REVISION=unknown
ENV STARSONGS_GIT_SHA=${REVISION}
COPY config ./config
COPY migrations ./migrations
COPY benches ./benches
COPY src ./src
# COPY keeps the files' own modification times, which can be older than the stub's:
# touching them makes cargo rebuild the crate instead of reusing the stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin starsongs \
 && install -D -m 0755 target/release/starsongs /out/usr/local/bin/starsongs \
 && install -d -m 0750 /out/data

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/starsongs/starsongs
LABEL org.opencontainers.image.title="starsongs" \
      org.opencontainers.image.description="Star Songs: a music catalog REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"

COPY --from=build /out/usr/local/bin/starsongs /usr/local/bin/starsongs
# The only writable place the service needs: a SQLite database, when one is used
# (DATABASE_URL=sqlite:///data/starsongs.db?mode=rwc). Mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data

# Production unless told otherwise: the service then refuses to start without
# auth.jwt_secret, an explicit database.url and a CORS allow-list
# (docs/operations/deploy.md).
ENV STARSONGS_ENV=production
# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
# 8080: the API (server.port). 9090: /metrics (admin.port), never publish it.
EXPOSE 8080 9090

# The binary is its own probe (no curl in the image). With --url it reads no
# configuration; if server.port is changed, override this check.
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/starsongs", "healthcheck", "--url", "http://127.0.0.1:8080"]

ENTRYPOINT ["/usr/local/bin/starsongs"]
CMD ["serve"]
