#!/usr/bin/env bash
# Certificates for mutual TLS between cluster nodes ([cluster] tls_cert, tls_key, tls_ca).
#
#   scripts/cluster-certs.sh DIR NAME...
#
# Makes, in DIR, a certificate authority (ca.pem, ca.key) and for each NAME a key (NAME.key)
# and a certificate signed by that CA (NAME.pem; CN=NAME, subjectAltName DNS:NAME, DNS:localhost,
# IP:127.0.0.1 (and NAME itself when it is an IP address), usable as a server and as a client).
# Idempotent: an existing CA in DIR is reused, and an existing NAME.pem that this CA signed and
# that is still valid for 30 days is kept. Prints what it made and what it kept.
# Each node gets ca.pem, its own NAME.pem and NAME.key; keep ca.key off the nodes.
#
# Environment: DAYS (validity of new certificates, default 825), CA_DAYS (default 3650).
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage 0 ;; esac
[ $# -ge 2 ] || { echo "cluster-certs.sh: name at least one node (scripts/cluster-certs.sh DIR NAME...)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "cluster-certs.sh: needs the openssl command (apt-get install -y openssl)" >&2; exit 1; }

DIR=$1; shift
DAYS=${DAYS:-825}
CA_DAYS=${CA_DAYS:-3650}
mkdir -p "$DIR"
umask 077

for name in "$@"; do
  [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._:-]*$ ]] && [ "$name" != ca ] ||
    { echo "cluster-certs.sh: \"$name\" is not a usable node name (letters, digits, . _ : -; not \"ca\")" >&2; exit 2; }
done

if [ -s "$DIR/ca.pem" ] && [ -s "$DIR/ca.key" ]; then
  openssl x509 -in "$DIR/ca.pem" -noout >/dev/null 2>&1 || { echo "cluster-certs.sh: $DIR/ca.pem is not a certificate" >&2; exit 1; }
  echo "kept  $DIR/ca.pem (existing CA: $(openssl x509 -in "$DIR/ca.pem" -noout -subject | sed 's/^subject= *//'))"
elif [ -e "$DIR/ca.pem" ] || [ -e "$DIR/ca.key" ]; then
  echo "cluster-certs.sh: $DIR has only one of ca.pem and ca.key; remove it or restore the other" >&2
  exit 1
else
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$CA_DAYS" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.pem" \
    -subj "/CN=ai-orchestrator-hub cluster CA $(date -u +%Y%m%dT%H%M%SZ)-$RANDOM" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$DIR/ca.key"; chmod 644 "$DIR/ca.pem"
  echo "made  $DIR/ca.pem, $DIR/ca.key (new CA)"
fi

for name in "$@"; do
  pem="$DIR/$name.pem" key="$DIR/$name.key"
  if [ -s "$pem" ] && [ -s "$key" ] &&
     openssl verify -CAfile "$DIR/ca.pem" "$pem" >/dev/null 2>&1 &&
     openssl x509 -in "$pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1 &&
     [ "$(openssl x509 -in "$pem" -noout -pubkey | openssl sha256)" = "$(openssl pkey -in "$key" -pubout | openssl sha256)" ]; then
    echo "kept  $pem (signed by this CA)"
    continue
  fi
  san="DNS:localhost,IP:127.0.0.1"
  if [[ "$name" =~ ^[0-9]+(\.[0-9]+){3}$ ]]; then san="IP:$name,$san"; else san="DNS:$name,$san"; fi
  ext=$(mktemp)
  csr=$(mktemp)
  trap 'rm -f "$ext" "$csr"' EXIT
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=$san" >"$ext"
  openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$key" -out "$csr" -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial -sha256 -days "$DAYS" \
    -extfile "$ext" -out "$pem" 2>/dev/null
  rm -f "$ext" "$csr"
  chmod 600 "$key"; chmod 644 "$pem"
  echo "made  $pem, $key (CN=$name, $san)"
done
rm -f "$DIR/ca.srl"
