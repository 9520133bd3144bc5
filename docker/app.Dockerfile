# The pgml-flow CLI: the migrate, scheduler and demo services of docker-compose.yml.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir /app
ENTRYPOINT ["pgml-flow"]
