# The pgml-flow CLI (migrations, seeding, later the scheduler).
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir /app
ENTRYPOINT ["pgml-flow"]
