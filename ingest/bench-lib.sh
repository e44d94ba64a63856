# Shell functions the benchmark scripts share (ingest/bench.sh, ingest/scale-bench.sh,
# api/bench.sh, api/fleet-bench.sh); sourced, not run.

# psql's notices ("database ... does not exist, skipping" of each fresh database) are noise here.
export PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning"

# A TCP port free on 127.0.0.1 now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Sets my_args (the mysql client's flags: -h HOST -P PORT -u USER [-pPASS]) and my_host,
# my_port from a URL mysql://USER[:PASS]@HOST[:PORT]/DB.
mysql_client_args() { # url
  local rest=${1#mysql://} user hostport
  user=${rest%%@*}
  hostport=${rest#*@}
  hostport=${hostport%%/*}
  my_host=${hostport%:*}
  my_port=3306
  [[ "$hostport" == *:* ]] && my_port=${hostport##*:}
  my_args=(-h "$my_host" -P "$my_port" -u "${user%%:*}")
  [[ "$user" == *:* ]] && my_args+=("-p${user#*:}")
  return 0
}

# Whether `make bench FEATURES=...` asked for the mysql feature.
mysql_wanted() {
  [[ " ${FEATURES:-} " == *" mysql "* ]]
}
