# vault-drift exporter image.
#   docker build -t vault-drift .
#   docker run -p 9847:9847 -e CLOUDFLARE_API_TOKEN=... -e CLOUDFLARE_ACCOUNT_ID=... \
#     -v /srv/vault:/data -e VAULT_DRIFT_DATABASE=/data/vault.db vault-drift
# deploy/docker-compose.yml runs it in demo mode instead (no Cloudflare account needed).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAULT_DRIFT_LISTEN=0.0.0.0:9847

WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY reports ./reports
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data --create-home vault-drift

USER vault-drift
WORKDIR /data
EXPOSE 9847

# No curl in the slim image: probe /healthz with the standard library.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9847/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["vault-drift"]
CMD ["serve", "--listen", "0.0.0.0:9847"]
