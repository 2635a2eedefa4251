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
# start.sh execs consul-render, which is then PID 1: it supervises nginx
# (-exec), passes the stop signal on and reaps orphans, so no init is needed.
COPY --from=build /consul-render /usr/local/bin/consul-render
RUN ln -s consul-render /usr/local/bin/consul-template
COPY templates/ /templates/
COPY start.sh /bin/start.sh
ENV CONSUL_URL=consul:8500
EXPOSE 80
# Passed on to nginx: SIGQUIT lets it finish the requests in flight.
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/bin/start.sh"]
