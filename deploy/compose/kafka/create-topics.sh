#!/bin/bash
# Create floorwatch's topics with 3 replicas and min.insync.replicas 2 before any service
# starts (the services would create missing ones with a single replica).
set -euo pipefail
for name in events agents metrics alerts actions commands dlq; do
    /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "${PREFIX}${name}" --partitions "$PARTITIONS" --replication-factor 3 \
        --config min.insync.replicas=2
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --describe --topic "${PREFIX}events"
