# Lyra on the official Hummingbot image: the governor, the governed strategies and their scripts.
#
#   docker build -t lyra-hummingbot:0.1.0 .
#   docker build --build-arg HUMMINGBOT_TAG=version-2.17.0 -t lyra-hummingbot:0.1.0 .   # another release
#
# One image serves every role in docker-compose.yml: a governed bot (`lyra-governor hummingbot
# --headless`, which runs the image's own bin/hummingbot_quickstart.py on scripts/lyra_*.py) or the
# governor (`lyra-governor serve`). The Hummingbot tag is pinned: the newest release checked
# against Hummingbot's source (the tests run the 20260922 package, whose API it shares).
ARG HUMMINGBOT_TAG=version-2.16.0
FROM hummingbot/hummingbot:${HUMMINGBOT_TAG}

# The official image keeps Hummingbot in the conda env "hummingbot" (first on PATH) and its source,
# built in place, in /home/hummingbot: on PYTHONPATH so `lyra-governor hummingbot` finds it.
ENV PYTHONPATH=/home/hummingbot \
    PYTHONUNBUFFERED=1

WORKDIR /opt/lyra
COPY requirements/ ./requirements/
COPY setup.cfg pyproject.toml README.md ./
COPY lyra_governor ./lyra_governor
COPY lyra_strategies ./lyra_strategies
COPY scripts ./scripts
COPY conf/scripts ./conf/scripts
COPY conf/lyra_governor.yml ./conf/lyra_governor.yml
# Into Hummingbot's env, next to Hummingbot, with the same exact versions as the tested venv
# (requirements/constraints.txt); editable, so `lyra-governor hummingbot` finds scripts/ and
# conf/scripts/ here; psycopg for the shared PostgreSQL ladder. No pip cache, no secrets.
RUN python -m pip install --no-cache-dir -c requirements/constraints.txt -e "/opt/lyra[postgres]" \
    && lyra-governor --version

# Scripts where Hummingbot looks for them (the bots' launcher links them again on start; the
# image's own terminal finds them here too).
COPY scripts/lyra_*.py /home/hummingbot/scripts/

WORKDIR /home/hummingbot
ENV LYRA_CONFIG=/opt/lyra/conf/lyra_governor.yml \
    LYRA_DATA_DIR=/home/hummingbot/data/lyra
# Without a command: Hummingbot's own entry point (its terminal). The compose bots run
# `lyra-governor hummingbot --root /home/hummingbot --headless`: on a first start it creates
# conf/.password_verification from CONFIG_PASSWORD, then execs the quickstart, whose errors go to
# the container's stderr (`docker compose logs`), not to logs/errors.log.
