# OpenBao with integrated (raft) storage, for the `openbao-raft` service of docker-compose.yml.
# The data lives on the named volume `openbao-raft-data`, so it survives `docker compose down`
# (not `down -v`). The node starts uninitialised and sealed: initialise and unseal it with
#   docker compose exec openbao-raft /bao operator init -address=http://127.0.0.1:8200 \
#     -key-shares=1 -key-threshold=1 -format=json
#   docker compose exec openbao-raft /bao operator unseal -address=http://127.0.0.1:8200 KEY
storage "raft" {
  path    = "/openbao/data"
  node_id = "openbao-raft-1"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # Plain HTTP: the port is published on 127.0.0.1 only.
  tls_disable = true
}

# As the other containers on the compose network reach this node.
api_addr     = "http://openbao-raft:8200"
cluster_addr = "https://openbao-raft:8201"

ui = false
