#!/usr/bin/env bash
# KAFKA_PATH/bin/kafka-topics.sh for librdkafka's tests (0045, 0052, 0077): Apache Kafka's own
# TopicCommand, from the jars scripts/kafka caches (there is no Kafka bin/ directory).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)"
exec "$REPO/scripts/kafka" run-class org.apache.kafka.tools.TopicCommand "$@"
