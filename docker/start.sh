#!/bin/sh
# Entry point of the load-balancer image (the seed's start.sh, on consul-render):
# start nginx, then keep its config in step with Consul. Every reload is
# checked with `nginx -t` first, so a bad render never reaches nginx.
#
# Environment:
#   APP_NAME     the Consul service to balance (required)
#   CONSUL_URL   the Consul agent, host:port or http(s)://host:port (default 127.0.0.1:8500)
#   TEMPLATE     default /templates/default.conf.tera
#   DESTINATION  default /etc/nginx/conf.d/default.conf
#   WAIT         quiescence, min[:max] (default 100ms:1s: bursts of changes, one reload)
#   NGINX_ARGS   extra arguments for every nginx call, e.g. "-p /srv/lb -c /srv/lb/nginx.conf"
set -eu

: "${APP_NAME:?set APP_NAME to the Consul service to balance}"
CONSUL_URL=${CONSUL_URL:-127.0.0.1:8500}
TEMPLATE=${TEMPLATE:-/templates/default.conf.tera}
DESTINATION=${DESTINATION:-/etc/nginx/conf.d/default.conf}
WAIT=${WAIT:-100ms:1s}
NGINX_ARGS=${NGINX_ARGS:-}
export APP_NAME

# shellcheck disable=SC2086 # NGINX_ARGS is a list of arguments
nginx $NGINX_ARGS

exec consul-render \
  -consul="$CONSUL_URL" \
  -template="$TEMPLATE:$DESTINATION:nginx $NGINX_ARGS -s reload" \
  -check="nginx $NGINX_ARGS -t -q" \
  -wait="$WAIT"
