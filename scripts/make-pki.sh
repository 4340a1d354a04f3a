#!/bin/sh
# A throwaway PKI for WS-Management over HTTPS with client certificates (docs/openwec.md):
#
#   sh scripts/make-pki.sh DIR [SERVER_NAME ...]
#
# makes, in DIR (unless DIR/ca.crt is already there):
#   ca.crt / ca.key          one CA that signs the server's certificate and every client's; give the
#                            pair to wefperf (PERF_TEST_CLIENT_CA_CERT / _KEY) to mint one client
#                            certificate per simulated host, and ca.crt to the collector
#                            (OpenWEC: ca_certificate) to check them
#   server.crt / server.key  CN = the first SERVER_NAME (default openwec), every SERVER_NAME as a
#                            DNS name, Server Authentication
#   client.crt / client.key  CN = wefperf-client, Client Authentication: one certificate for every host
#
# EC P-256 keys (OpenWEC's TLS mode takes P-256 and P-384), PEM. For tests only: the keys are
# readable by every user, so the containers (wefperf's uid 10001, OpenWEC's own user) can read them.
set -eu

dir=${1:?usage: make-pki.sh DIR [SERVER_NAME ...]}
shift
[ "$#" -gt 0 ] || set -- openwec
server=$1
days=${PKI_DAYS:-825}

if [ -f "$dir/ca.crt" ]; then
    echo "make-pki: $dir/ca.crt exists; keeping the PKI that is there"
    exit 0
fi
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

san=""
for name in "$@"; do
    san="${san:+$san,}DNS:$name"
done

cat > "$work/ext.cnf" <<EOF
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $san
authorityKeyIdentifier = keyid

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$work/ca.key"
openssl req -x509 -new -key "$work/ca.key" -subj "/CN=wefperf test CA" -days "$days" \
    -extensions ca -config "$work/ext.cnf" -out "$work/ca.crt" 2>/dev/null

sign() {  # NAME CN EXTENSION
    key "$work/$1.key"
    openssl req -new -key "$work/$1.key" -subj "/CN=$2" -out "$work/$1.csr" 2>/dev/null
    openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
        -days "$days" -extfile "$work/ext.cnf" -extensions "$3" -out "$work/$1.crt" 2>/dev/null
}
sign server "$server" server
sign client wefperf-client client

for f in ca server client; do
    cp "$work/$f.crt" "$work/$f.key" "$dir/"
    chmod 0644 "$dir/$f.crt" "$dir/$f.key"
done
echo "make-pki: wrote ca, server (CN=$server; $san) and client certificates to $dir"
