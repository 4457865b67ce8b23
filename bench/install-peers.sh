#!/bin/sh
# Installs the peers the benchmark compares against (HAProxy, NGINX) and its load tools: ab
# (apache2-utils), openssl, curl, and gcc + libssl-dev (+ libnghttp2-dev) to build
# bench/load/h1load.c and h2load.c; perf when available. Idempotent: does nothing when all are
# present.
set -eu

missing=""
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"
# Debian builds NGINX's stream module (SNI passthrough) as a separate package.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing="$missing libnginx-mod-stream"
command -v ab >/dev/null 2>&1 || missing="$missing apache2-utils"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
[ -e /usr/include/openssl/ssl.h ] || missing="$missing libssl-dev"
[ -e /usr/include/nghttp2/nghttp2.h ] || missing="$missing libnghttp2-dev"

if [ -z "$missing" ]; then
  echo "install-peers: haproxy, nginx (with stream), ab, openssl, taskset, curl, gcc, libssl-dev and libnghttp2-dev are present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-peers: need root (or sudo) to install:$missing" >&2
    exit 1
  fi
fi

echo "install-peers: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y --no-install-recommends $missing
# perf helps explain results but is not needed to produce them.
command -v perf >/dev/null 2>&1 || $SUDO apt-get install -y --no-install-recommends linux-perf || true
# The packages start system services on their default ports; the benchmark runs its own instances.
for svc in haproxy nginx; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "install-peers: done"
