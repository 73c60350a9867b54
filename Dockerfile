# One image for every floorwatch service; the command picks the service:
#   docker run floorwatch python -m services.monitor
# (ingest, monitor, dispatcher, api, notify, simulator). Every service listens on 8080
# inside the container, so the healthcheck, the probes and the scrape port are the same.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/floorwatch
WORKDIR /src
# dependencies first, so a change of code does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir -p shared services \
    && touch shared/__init__.py services/__init__.py \
    && /opt/floorwatch/bin/pip install . \
    && /opt/floorwatch/bin/pip uninstall -y floorwatch
COPY shared ./shared
COPY services ./services
RUN /opt/floorwatch/bin/pip install --no-deps . \
    && /opt/floorwatch/bin/python -m compileall -q /opt/floorwatch

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 floorwatch \
    && useradd --system --uid 10001 --gid floorwatch --no-create-home --shell /usr/sbin/nologin floorwatch
COPY --from=build /opt/floorwatch /opt/floorwatch
ENV PATH=/opt/floorwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOORWATCH_INGEST_HOST=0.0.0.0 FLOORWATCH_INGEST_PORT=8080 \
    FLOORWATCH_MONITOR_HOST=0.0.0.0 FLOORWATCH_MONITOR_PORT=8080 \
    FLOORWATCH_DISPATCHER_HOST=0.0.0.0 FLOORWATCH_DISPATCHER_PORT=8080 \
    FLOORWATCH_API_HOST=0.0.0.0 FLOORWATCH_API_PORT=8080 \
    FLOORWATCH_NOTIFY_HOST=0.0.0.0 FLOORWATCH_NOTIFY_PORT=8080 \
    FLOORWATCH_SIM_HOST=0.0.0.0 FLOORWATCH_SIM_PORT=8080 \
    FLOORWATCH_KAFKA_IDEMPOTENCE=true
WORKDIR /home/floorwatch
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.api"]
