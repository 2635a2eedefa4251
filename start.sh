#!/bin/sh
# Entry point of the load-balancer image (the seed's start.sh, on consul-render).
# consul-render is the container's main process and supervises nginx: it
# renders the config from Consul, starts nginx once the first render is
# complete, checks every later render with `nginx -t` before it replaces the
# file, then reloads nginx by SIGHUP. A signal to the container (SIGQUIT for
# a graceful drain, SIGTERM for a fast stop) is passed to nginx, and the
# container exits with nginx's exit code. As PID 1 it also reaps orphans.
#
# Environment:
#   APP_NAME      the Consul service to balance (required)
#   CONSUL_URL    the Consul agent, host:port or http(s)://host:port (default 127.0.0.1:8500)
#   TEMPLATE      default /templates/default.conf.tera
#   DESTINATION   default /etc/nginx/conf.d/default.conf
#   WAIT          quiescence, min[:max] (default 100ms:1s: bursts of changes, one reload)
#   NGINX_ARGS    extra arguments for every nginx call, e.g. "-p /srv/lb -c /srv/lb/nginx.conf"
#   METRICS_ADDR  serve /metrics and /health here, e.g. 0.0.0.0:9102 (default: off)
set -eu

: "${APP_NAME:?set APP_NAME to the Consul service to balance}"
CONSUL_URL=${CONSUL_URL:-127.0.0.1:8500}
TEMPLATE=${TEMPLATE:-/templates/default.conf.tera}
DESTINATION=${DESTINATION:-/etc/nginx/conf.d/default.conf}
WAIT=${WAIT:-100ms:1s}
NGINX_ARGS=${NGINX_ARGS:-}
METRICS_ADDR=${METRICS_ADDR:-}
export APP_NAME

# An empty -metrics-addr means unset, like every empty flag value.
exec consul-render \
  -consul="$CONSUL_URL" \
  -template="$TEMPLATE:$DESTINATION" \
  -check="nginx $NGINX_ARGS -t -q" \
  -wait="$WAIT" \
  -metrics-addr="$METRICS_ADDR" \
  -exec="nginx $NGINX_ARGS -g 'daemon off;'"
