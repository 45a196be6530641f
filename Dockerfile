# One image for every docker-compose service: the CLI, and the same patched moto server the
# embedded default runs (stream mappings stored, delivered by `tickstream consume`).
# The image holds what a user's `pip install` holds: the wheel, whose packages and data files
# (infra/*.yaml included) pyproject.toml lists, built from a context without local state (.dockerignore).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
ENTRYPOINT ["tickstream"]
