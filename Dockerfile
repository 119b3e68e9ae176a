# The Beacon image: the `beacon` CLI on Python 3.11, run as an unprivileged user.
# docker-compose.yml runs it as API replicas (`beacon serve --no-worker`) and as the worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the wheel needs (see [tool.setuptools] in pyproject.toml), so edits to tests or docs
# do not invalidate the install layer.
COPY pyproject.toml ./
COPY domain/ domain/
COPY infra/ infra/
COPY projections/ projections/
COPY process_managers/ process_managers/
COPY api/ api/
RUN pip install . && rm -rf /src

# A container listens on every interface; BEACON_HOST is the default of `beacon serve --host`.
# The data dir only matters without DATABASE_URL (then Beacon starts its embedded Postgres there).
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin beacon
USER beacon
WORKDIR /home/beacon
ENV BEACON_HOST=0.0.0.0 \
    BEACON_PORT=8000 \
    BEACON_DATA_DIR=/home/beacon/.beacon

EXPOSE 8000
CMD ["beacon", "serve"]
