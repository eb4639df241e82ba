# The datamin image used by docker-compose.yml: one image, every service picks its subcommand.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY datamin ./datamin
COPY schemas ./schemas
COPY producers ./producers
COPY processors ./processors
COPY warehouse ./warehouse
RUN pip install --no-cache-dir . \
    && mkdir -p /run/datamin && chown nobody /run/datamin && chmod 0700 /run/datamin
# the `run` volume of docker-compose.yml starts as a copy of this folder: the agent's socket lives there
USER nobody
ENTRYPOINT []
CMD ["datamin", "--help"]
