#!/usr/bin/env bash
# nginx: an event-driven web server with edge-triggered epoll, accept4 and
# sendfile, a master and two workers sharing one listening socket. curl
# fetches a 4 MiB file (sendfile) many times over kept-alive and parallel
# connections, byte ranges and a missing page, and PUTs a file back (the
# upstream direction); every byte is checked against sha256.  The same
# nginx is also a reverse proxy in front of itself (a proxy chain): on
# proxy.sock with a new upstream connection per request, and under /kept/
# with kept-alive upstream connections.
# APPS_NGINX_SENDFILE=off turns sendfile off (for measuring until the library
# interposes sendfile).
source "$(dirname "$0")/lib.sh"
need nginx nginx-light
need curl curl

write_config() {
	mkdir -p "$WORK/www" "$WORK/tmp"
	cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
user root;
pid $WORK/nginx.pid;
error_log stderr warn;
events {
	use epoll;
	worker_connections 256;
	accept_mutex off;
}
http {
	access_log off;
	sendfile ${APPS_NGINX_SENDFILE:-on};
	tcp_nopush on;
	keepalive_requests 10000;
	default_type application/octet-stream;
	client_body_temp_path $WORK/tmp/body;
	proxy_temp_path $WORK/tmp/proxy;
	fastcgi_temp_path $WORK/tmp/fastcgi;
	uwsgi_temp_path $WORK/tmp/uwsgi;
	scgi_temp_path $WORK/tmp/scgi;
	upstream kept {
		server unix:$WORK/nginx.sock;
		keepalive 8;
	}
	server {
		listen unix:$WORK/proxy.sock;
		location /kept/ {
			proxy_pass http://kept/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
		location / {
			proxy_pass http://unix:$WORK/nginx.sock:;
		}
	}
	server {
		listen unix:$WORK/nginx.sock;
		root $WORK/www;
		client_max_body_size 64m;
		location /upload/ {
			dav_methods PUT;
			create_full_put_path on;
		}
	}
}
EOF
}

# get TAG NAME...: one curl, one kept-alive connection to nginx.sock (to
# proxy.sock with $via set to proxy), each NAME fetched into
# out/NAME.TAG.N; curl fails on any HTTP error.
get() {
	local tag=$1 args=() name n=0
	shift
	for name; do
		args+=("http://tssx/$name" -o "$WORK/out/${name//\//_}.$tag.$((++n))")
	done
	app curl -sSf --unix-socket "$WORK/${via:-nginx}.sock" "${args[@]}"
}

start_server() {
	write_config
	head -c $((4 * 1024 * 1024 + 4321)) /dev/urandom >"$WORK/www/big"
	echo "hello from nginx" >"$WORK/www/small"
	serve nginx -c "$WORK/nginx.conf" -p "$WORK"
	wait_for "nginx to listen" listening "$WORK/nginx.sock"
	wait_for "nginx to listen as a proxy" listening "$WORK/proxy.sock"
}

app_run() {
	rm -rf "$WORK/out"
	mkdir "$WORK/out"
	local big small
	big=$(sha256_of "$WORK/www/big")
	small=$(sha256_of "$WORK/www/small")

	get serial big small big small big big small big
	local jobs=() i
	for i in 1 2 3 4; do
		get "parallel$i" big big small big &
		jobs+=("$!")
	done
	for i in "${jobs[@]}"; do
		wait "$i" || fail "a parallel curl failed"
	done
	# Through the proxy: a new upstream connection per request, and
	# kept-alive ones.
	via=proxy get proxied big small big small small
	via=proxy get proxiedkept kept/big kept/small kept/big kept/small kept/small
	local f
	expect_eq "files fetched" 34 "$(ls "$WORK/out" | wc -l)"
	for f in "$WORK"/out/big.* "$WORK"/out/kept_big.*; do
		expect_eq "sha256 of $f" "$big" "$(sha256_of "$f")"
	done
	for f in "$WORK"/out/small.* "$WORK"/out/kept_small.*; do
		expect_eq "sha256 of $f" "$small" "$(sha256_of "$f")"
	done

	# A byte range, served by sendfile from an offset.
	app curl -sSf --unix-socket "$WORK/nginx.sock" -r 1000000-1999999 \
		-o "$WORK/range" http://tssx/big
	expect_eq "sha256 of a byte range" \
		"$(tail -c +1000001 "$WORK/www/big" | head -c 1000000 | sha256sum | cut -d' ' -f1)" \
		"$(sha256_of "$WORK/range")"

	local code
	code=$(app curl -s --unix-socket "$WORK/nginx.sock" -o /dev/null -w '%{http_code}' http://tssx/missing)
	expect_eq "status of a missing page" 404 "$code"

	# Upstream: a PUT of 4 MiB lands byte-exact on disk, and reads back.
	app curl -sSf --unix-socket "$WORK/nginx.sock" -T "$WORK/www/big" http://tssx/upload/copy
	expect_eq "sha256 of the uploaded file" "$big" "$(sha256_of "$WORK/www/upload/copy")"
	get back upload/copy
	expect_eq "sha256 of the upload read back" "$big" "$(sha256_of "$WORK/out/upload_copy.back.1")"

	APPS_MIN_CONNS=11
	APPS_MIN_RING_BYTES=$((23 * 4 * 1024 * 1024))
}

# Requests on one kept-alive connection: 20000 of the small page, 400 of the
# 4 MiB file; 5000 of the small page through the proxy, with a new
# upstream connection per request and with kept-alive ones.
bench_client() {
	measure small-request 20000 curl -sSf --unix-socket "$WORK/nginx.sock" "http://tssx/small?[1-20000]" -o /dev/null
	measure big-request 400 curl -sSf --unix-socket "$WORK/nginx.sock" "http://tssx/big?[1-400]" -o /dev/null
	measure proxied-request 5000 curl -sSf --unix-socket "$WORK/proxy.sock" "http://tssx/small?[1-5000]" -o /dev/null
	measure proxied-kept-request 5000 curl -sSf --unix-socket "$WORK/proxy.sock" \
		"http://tssx/kept/small?[1-5000]" -o /dev/null
}

apps_main "$@"
