# The Redis that sluice fronts in docker/compose.yaml and scripts/docker-smoke.sh, from Debian's
# redis-server so it builds without an image registry. In a normal deployment use the official
# image instead (`image: redis:7` in compose.yaml); nothing else changes.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
STOPSIGNAL SIGTERM
# Loopback only: in the shared network namespace the sidecar reaches it, nothing else does.
# No persistence: an example cache.
ENTRYPOINT ["redis-server", "--bind", "127.0.0.1", "--port", "6379", "--protected-mode", "no", \
            "--save", "", "--appendonly", "no", "--dir", "/tmp"]
