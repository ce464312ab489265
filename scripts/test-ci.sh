#!/usr/bin/env bash
# Installs everything the tests need on a bare machine of this project's kind, then runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: nginx and wrk (load benchmark references), time (memory figures),
# slapd and ldap-utils (a real OpenLDAP for the LDAP tests), python3 (its http.server is an
# HTTP/1.0 upstream that closes every connection), redis-server (the Redis coordination's tests
# and the cluster e2e test use the machine's Redis and start servers of their own), chromium (the
# web UI's browser tests drive it headless through playwright-core, which brings no browser).
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null 2>&1 || need+=(ldap-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x "${GMP_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # slapd asks debconf questions on install; the tests configure their own slapd instances.
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
fi

# npm packages; `prepare` builds dist/ (the e2e tests run the built server, as users do).
npm ci --no-audit --no-fund
# Go test tools (they wrap golang.org/x/mod so our code is checked against Go's own answers).
(cd test/gotools && go mod download)
# A real S3 server for the S3 store's tests (versitygw, posix backend), built once per machine:
# the build takes minutes, so it happens here rather than inside a test's time limit, and is
# kept in the cache where test/helpers/s3.ts looks (GMP_VERSITYGW overrides both).
versitygw_bin="${HOME}/.cache/gomodproxy-test/bin"
if [ -z "${GMP_VERSITYGW:-}" ] && [ ! -x "${versitygw_bin}/versitygw" ]; then
  mkdir -p "${versitygw_bin}"
  GOBIN="${versitygw_bin}" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi

# The real govulncheck, which the vulnerability database mirror's tests hold it to, built the same way.
if [ -z "${GMP_GOVULNCHECK:-}" ] && [ ! -x "${versitygw_bin}/govulncheck" ]; then
  mkdir -p "${versitygw_bin}"
  GOBIN="${versitygw_bin}" GOFLAGS=-buildvcs=false go install golang.org/x/vuln/cmd/govulncheck@v1.9.0
fi

# The machine's Redis on its default port, where the tests look (GMP_REDIS_URL overrides it);
# started here without persistence when nothing answers there.
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
fi

# The gates every change passes: types (src, tests and benchmarks), lint, formatting.
npm run check

npx vitest run
