# One image for every docker-compose service: the CLI, and the same patched moto server the
# embedded default runs (stream mappings stored, delivered by `tickstream consume`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY market market
COPY producer producer
COPY consumers consumers
COPY charts charts
COPY tickstream tickstream
COPY infra infra
# Editable, so the CLI finds infra/template.yaml beside its sources as in a checkout.
RUN pip install --no-cache-dir -e .
ENV MPLCONFIGDIR=/tmp/matplotlib
ENTRYPOINT ["tickstream"]
