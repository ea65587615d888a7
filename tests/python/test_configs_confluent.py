"""confluent-kafka's AdminClient against one Fjord node: describe_configs,
incremental_alter_configs and alter_configs on topics and brokers (the
config registry, dynamic broker configs, Kafka's sources and synonyms)."""

import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)

TIMEOUT = 30


def admin_for(node):
    return AdminClient({"bootstrap.servers": node.bootstrap})


def create(admin, name, config=None):
    fs = admin.create_topics([NewTopic(name, 1, 1, config=config or {})], request_timeout=TIMEOUT)
    fs[name].result(TIMEOUT)


def describe(admin, resource):
    fs = admin.describe_configs([resource], request_timeout=TIMEOUT)
    return fs[resource].result(TIMEOUT)


def incremental(admin, resource, validate_only=False):
    fs = admin.incremental_alter_configs([resource], validate_only=validate_only, request_timeout=TIMEOUT)
    return fs[resource].result(TIMEOUT)


def test_topic_configs_every_kafka_config_listed_with_sources(fjord, topic):
    admin = admin_for(fjord)
    create(admin, topic, {"compression.type": "lz4", "delete.retention.ms": "900"})
    configs = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    # Every Kafka 4.x topic config is listed.
    for name in ("retention.ms", "cleanup.policy", "min.compaction.lag.ms", "remote.storage.enable",
                 "message.timestamp.after.max.ms", "leader.replication.throttled.replicas"):
        assert name in configs, name
    assert configs["compression.type"].value == "lz4"
    assert configs["compression.type"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.ms"].value == "604800000"


def test_incremental_alter_set_delete_append_subtract(fjord, topic):
    admin = admin_for(fjord)
    create(admin, topic)
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
        ],
    )
    incremental(admin, res)
    configs = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "delete,compact"
    res = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
        ],
    )
    incremental(admin, res)
    configs = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["cleanup.policy"].value == "compact"

    # Refusals: an unknown name and a bad value are INVALID_CONFIG; validate_only commits nothing.
    for name, value in (("no.such.config", "1"), ("retention.ms", "-5")):
        bad = ConfigResource(
            ConfigResource.Type.TOPIC,
            topic,
            incremental_configs=[ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)],
        )
        with pytest.raises(KafkaException) as e:
            incremental(admin, bad)
        assert e.value.args[0].name() == "INVALID_CONFIG", e.value
    dry = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[ConfigEntry("segment.ms", "1000", incremental_operation=AlterConfigOpType.SET)],
    )
    incremental(admin, dry, validate_only=True)
    configs = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value

    missing = ConfigResource(
        ConfigResource.Type.TOPIC,
        "no-such-topic-" + topic,
        incremental_configs=[ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as e:
        incremental(admin, missing)
    assert e.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART", e.value


def test_alter_configs_replaces_the_whole_set(fjord, topic):
    admin = admin_for(fjord)
    create(admin, topic, {"retention.ms": "1000", "segment.ms": "2000"})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "5000"})
    fs = admin.alter_configs([res], request_timeout=TIMEOUT)
    fs[res].result(TIMEOUT)
    configs = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    assert configs["retention.ms"].value == "5000"
    # segment.ms was not named: AlterConfigs deleted it.
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def wait_topic_config(admin, topic, name, value):
    deadline = time.time() + TIMEOUT
    while True:
        entry = describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))[name]
        if entry.value == value or time.time() > deadline:
            return entry
        time.sleep(0.2)


def test_broker_dynamic_configs_reach_topics_and_read_only_is_refused(fjord, topic):
    admin = admin_for(fjord)
    create(admin, topic)
    # The cluster default (broker resource ""), set with the fjord CLI:
    # confluent-kafka refuses an empty resource name.
    r = fjord.cli("config", "set", "--broker-defaults", "--add-config", "log.retention.ms=7200000")
    assert r.returncode == 0, r.stdout + r.stderr
    entry = wait_topic_config(admin, topic, "retention.ms", "7200000")
    assert entry.value == "7200000"
    assert entry.source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

    # Per broker wins over the cluster default.
    per_broker = ConfigResource(
        ConfigResource.Type.BROKER,
        "1",
        incremental_configs=[
            ConfigEntry("log.retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    incremental(admin, per_broker)
    entry = wait_topic_config(admin, topic, "retention.ms", "3600000")
    assert entry.source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    # confluent-kafka keys synonyms by name, so the broker synonym's levels
    # collapse into one entry; the Java test checks their order.
    assert "log.retention.ms" in entry.synonyms, entry.synonyms

    broker = describe(admin, ConfigResource(ConfigResource.Type.BROKER, "1"))
    assert broker["log.retention.ms"].value == "3600000"
    assert broker["log.retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert broker["node.id"].is_read_only
    assert not broker["log.retention.ms"].is_read_only

    ro = ConfigResource(
        ConfigResource.Type.BROKER,
        "1",
        incremental_configs=[ConfigEntry("log.dirs", "/x", incremental_operation=AlterConfigOpType.SET)],
    )
    with pytest.raises(KafkaException) as e:
        incremental(admin, ro)
    assert e.value.args[0].name() == "INVALID_REQUEST", e.value
