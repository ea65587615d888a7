"""ListGroups on a 3-node cluster: confluent-kafka's AdminClient.list_consumer_groups() asks
every broker and merges, and each broker answers with the groups it coordinates, so all 12
groups with committed offsets show up (issue 13: it showed 3 of 12)."""

import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from test_cluster_clients import bootstrap, cluster, create_topic, wait_for  # noqa: F401


def test_list_consumer_groups_shows_every_group(cluster):  # noqa: F811
    topic = "lg-%s" % uuid.uuid4().hex[:6]
    create_topic(cluster, topic, 1)
    groups = {"%s-g%d" % (topic, i) for i in range(12)}
    for group in sorted(groups):
        c = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": group, "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        c.close()

    admin = AdminClient({"bootstrap.servers": cluster[0].bootstrap})

    def listed():
        result = admin.list_consumer_groups(request_timeout=10).result(30)
        return {g.group_id for g in result.valid} & groups, result.errors

    wait_for(lambda: listed() == (groups, []), 30, "all 12 groups listed")
