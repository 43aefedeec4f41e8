# Multi-stage build on Debian bookworm, Debian packages only.
#   docker build -t ai-orchestrator-hub .
#   docker run -p 3001:3001 -v hub-data:/var/lib/ai-orchestrator-hub/data ai-orchestrator-hub
FROM debian:bookworm-slim AS builder
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config git ca-certificates \
      libcaf-dev libopenblas-dev libprotobuf-dev protobuf-compiler libpq-dev libsqlite3-dev libspdlog-dev \
      libtoml11-dev libcpp-httplib-dev libboost-test-dev nlohmann-json3-dev libjwt-dev \
      libcli11-dev libssl-dev libsodium-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHUB_BUILD_TESTS=OFF -DHUB_CUDA=OFF \
    && ninja -C build ai-orchestrator-hub hivectl \
    && strip build/ai-orchestrator-hub build/hivectl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates curl libopenblas0-pthread libprotobuf32 libcaf-io0.17 libcaf-core0.17 libcaf-openssl0.17 libcpp-httplib0.11 libspdlog1.10 libfmt9 \
      libsqlite3-0 libpq5 libssl3 libjwt0 libsodium23 libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd -r -s /bin/false ai-orchestrator \
    && mkdir -p /opt/ai-orchestrator-hub/settings /var/lib/ai-orchestrator-hub/data /var/log/ai-orchestrator-hub \
    && chown -R ai-orchestrator:ai-orchestrator /var/lib/ai-orchestrator-hub /var/log/ai-orchestrator-hub
COPY --from=builder /src/build/ai-orchestrator-hub /src/build/hivectl /opt/ai-orchestrator-hub/
COPY config/settings/ /opt/ai-orchestrator-hub/settings/
RUN ln -s /opt/ai-orchestrator-hub/ai-orchestrator-hub /usr/local/bin/ai-orchestrator-hub \
    && ln -s /opt/ai-orchestrator-hub/hivectl /usr/local/bin/hivectl
WORKDIR /opt/ai-orchestrator-hub
# Containers log to stdout and keep data in the volume; secrets come from the environment.
ENV HIVE_SERVER__DATA_DIR=/var/lib/ai-orchestrator-hub/data \
    DATABASE_URL=sqlite:///var/lib/ai-orchestrator-hub/data/hive.db \
    HIVE_LOGGING__FILE=""
VOLUME ["/var/lib/ai-orchestrator-hub/data"]
EXPOSE 3001
USER ai-orchestrator
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3001/health >/dev/null || exit 1
CMD ["ai-orchestrator-hub"]
