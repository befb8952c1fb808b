# The motcua image: one image, one role per container (engine, project, serve).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY projections projections
COPY producers producers
COPY motcua motcua
RUN pip install --no-cache-dir .
ENV MOTCUA_HOME=/var/lib/motcua MOTCUA_LOG_FORMAT=json
CMD ["motcua", "--help"]
