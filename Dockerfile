# Lyra on the official Hummingbot image: the governor, the governed strategies and their scripts.
#
#   docker build -t lyra-hummingbot .                       # latest Hummingbot
#   docker build --build-arg HUMMINGBOT_TAG=version-2.17.0 -t lyra-hummingbot .   # pin one
#
# One image serves every role in docker-compose.yml: a governed bot (Hummingbot's own entry
# point, headless, running scripts/lyra_*.py) or the governor (`lyra-governor serve`).
ARG HUMMINGBOT_TAG=latest
FROM hummingbot/hummingbot:${HUMMINGBOT_TAG}

# The official image keeps Hummingbot in the conda env "hummingbot", already first on PATH.
WORKDIR /opt/lyra
COPY setup.cfg pyproject.toml README.md ./
COPY lyra_governor ./lyra_governor
COPY lyra_strategies ./lyra_strategies
# Into Hummingbot's env, next to Hummingbot (its dependencies are already there); psycopg for
# the shared PostgreSQL ladder. No build cache, no sources of secrets in the image.
RUN python -m pip install --no-cache-dir "/opt/lyra[postgres]" \
    && lyra-governor --version

# Scripts where Hummingbot looks for them; example configs where `install-scripts` and the
# compose file expect them (conf/ itself is a volume, so they are copied, not baked over it).
COPY scripts/lyra_*.py /home/hummingbot/scripts/
COPY conf/scripts/ /opt/lyra/conf/scripts/
COPY conf/lyra_governor.yml /opt/lyra/conf/lyra_governor.yml

WORKDIR /home/hummingbot
ENV LYRA_CONFIG=/opt/lyra/conf/lyra_governor.yml \
    LYRA_DATA_DIR=/home/hummingbot/data/lyra \
    PYTHONUNBUFFERED=1
# Hummingbot's own entry point stays the default command (headless with HEADLESS_MODE=true).
