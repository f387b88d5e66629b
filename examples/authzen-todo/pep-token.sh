#!/bin/sh
# Prints a credential for the todo backend (the AuthZEN PEP) of a running example server: a new
# API key of service-account:todo-backend, which the PEP sends as `Authorization: Bearer <key>`.
#
#   PORTCULLIS_ADDR=http://127.0.0.1:7071 ./pep-token.sh
#
# Minting needs an administrator's CLI session for that server: log in once with the one-time
# bootstrap credential the server printed at its first start (`portcullis login --bootstrap -`),
# or set PORTCULLIS_BOOTSTRAP to it and this script logs in first. PEP_KEY_TTL: the key's
# lifetime (default 1d). PORTCULLIS_CLI: the portcullis command (default: this checkout's).
set -eu
: "${PORTCULLIS_ADDR:?set PORTCULLIS_ADDR to the example server, e.g. http://127.0.0.1:7071}"
export PORTCULLIS_ADDR
here=$(cd "$(dirname "$0")" && pwd)
cli=${PORTCULLIS_CLI:-"$here/../../bin/portcullis.js"}
if [ -n "${PORTCULLIS_BOOTSTRAP:-}" ]; then
  printf '%s\n' "$PORTCULLIS_BOOTSTRAP" | "$cli" login --bootstrap - >/dev/null
fi
"$cli" apikeys mint --identity service-account:todo-backend --ttl "${PEP_KEY_TTL:-1d}" \
  --description "todo backend (AuthZEN PEP)" --json |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).api_key + "\n"))'
