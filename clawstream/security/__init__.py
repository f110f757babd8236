"""Security of a clawstream installation: its CA and certificates (`pki`), one credential per
client with its role's least-privilege ACLs (`acls`, `credentials`), and where the local
installation keeps them (`local`). The Kafka runtime (`clawstream.kafka.security`) finds a
process's credential; `clawstream pki` and `clawstream credentials` manage them."""
