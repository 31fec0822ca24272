#!/usr/bin/env bash
# Installs what `make bench-proxies` compares against and measures with:
# nginx, HAProxy, Caddy and wrk from Debian packages. The constant-rate
# latency generator and the gRPC load loop are our own (bench/load), so
# nothing else is needed.
# Idempotent: a second run installs nothing. The packages' system services
# are never started or enabled by us: the harness runs each proxy as its
# own child process with a config file in a temp dir.
set -euo pipefail

need=()
for pair in nginx:nginx-light haproxy:haproxy caddy:caddy wrk:wrk taskset:util-linux; do
	bin=${pair%%:*} pkg=${pair#*:}
	command -v "$bin" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
	echo "setup: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# policy-rc.d 101 keeps dpkg from starting the packages' services.
	prc=/usr/sbin/policy-rc.d
	made_prc=0
	if [ ! -e "$prc" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod +x "$prc" && made_prc=1
	fi
	trap '[ "$made_prc" = 1 ] && rm -f "$prc"' EXIT
	apt-get update -qq
	# nginx-light is gone from newer Debian releases; nginx is the fallback.
	if ! apt-get install -y -qq --no-install-recommends "${need[@]}"; then
		apt-get install -y -qq --no-install-recommends "${need[@]/nginx-light/nginx}"
	fi
fi

for b in nginx haproxy caddy wrk; do
	printf 'setup: %-8s %s\n' "$b" "$(command -v "$b")"
done
