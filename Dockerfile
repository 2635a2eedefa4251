# syntax=docker/dockerfile:1
# The seed's load-balancer image (nginx + consul-template), on consul-render:
# a static musl binary next to the official nginx, with the templates and
# start.sh. `consul-template` is a symlink so existing start scripts run.

FROM rust:1.88-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin consul-render \
 && install -m 0755 target/release/consul-render /consul-render

FROM nginx:1.27
# start.sh execs consul-render, which would then be PID 1: tini reaps the
# orphans that nginx's daemonising and reload commands leave behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /consul-render /usr/local/bin/consul-render
RUN ln -s consul-render /usr/local/bin/consul-template
COPY templates/ /templates/
COPY docker/start.sh /bin/start.sh
ENV CONSUL_URL=consul:8500
EXPOSE 80
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/bin/start.sh"]
