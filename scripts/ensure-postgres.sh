#!/usr/bin/env bash
# Print the directory holding PostgreSQL's server binaries (initdb, postgres), installing them first when the
# machine has none. The production-topology suite (tests/e2e/topology) runs its own throwaway server from there.
#
# Looked for, in order: $RUNWAY_PG_BIN, `initdb` on PATH, /usr/lib/postgresql/<newest>/bin. When none is found
# and this runs as root on a Debian-like system, `apt-get install -y postgresql` installs one (CI runs as root);
# otherwise it fails saying what to install.
set -euo pipefail

find_bin_dir() {
  if [ -n "${RUNWAY_PG_BIN:-}" ] && [ -x "$RUNWAY_PG_BIN/initdb" ]; then
    echo "$RUNWAY_PG_BIN"
    return 0
  fi
  local initdb
  if initdb="$(command -v initdb 2>/dev/null)"; then
    # /usr/local/bin/initdb may be a symlink into the versioned directory that also holds `postgres`.
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  local newest
  newest="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -n "$newest" ] && [ -x "$newest/initdb" ]; then
    echo "$newest"
    return 0
  fi
  return 1
}

if find_bin_dir; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== no PostgreSQL server found: apt-get install -y postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  find_bin_dir && exit 0
fi
echo "no PostgreSQL server binaries (initdb, postgres) found; install PostgreSQL or set RUNWAY_PG_BIN" >&2
exit 1
