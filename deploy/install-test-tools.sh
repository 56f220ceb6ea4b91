#!/usr/bin/env bash
# The Debian tools the end-to-end tests start themselves: wrk (the bench-serve smoke test),
# Prometheus with promtool and the Pushgateway (the monitoring-stack tests), chromium (the
# browser test). Installs the missing ones when run as root (or with password-less sudo);
# otherwise prints the exact command to run and exits 1, before any test has started.
set -euo pipefail

declare -A package_of=(
  [wrk]=wrk
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [chromium]=chromium
)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
install=(apt-get install -y -qq --no-install-recommends "${packages[@]}")

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "The end-to-end tests start these Debian tools, which are not installed: ${packages[*]}" >&2
  echo "Install them (as root), then run the tests again:" >&2
  echo "  sudo apt-get update && sudo ${install[*]}" >&2
  echo "(make test-fast runs the unit and database tests, which need none of them.)" >&2
  exit 1
fi
echo "installing the tools the end-to-end tests start: ${packages[*]}"
log=$(mktemp)
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  "${install[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "installing ${packages[*]} failed (apt-get's output above)" >&2
  exit 1
fi
rm -f "$log"
echo "installed: ${packages[*]}"
