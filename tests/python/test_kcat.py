"""kcat (Debian's build, an older librdkafka): metadata listing and a produce/consume round trip."""

import re
import shutil
import subprocess

import pytest

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


@pytest.fixture(autouse=True)
def _kcat_installed():
    if KCAT is None:
        pytest.fail("kcat not installed (Debian package `kcat`; scripts/test installs it as root)")


def kcat(*args, input=None, timeout=30):
    r = subprocess.run([KCAT, *args], input=input, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "kcat %s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr)
    return r.stdout


def test_metadata_lists_broker_and_topics(fjord, topic):
    r = fjord.cli("topic", "create", topic, "--partitions", "2", "--replication-factor", "1")
    assert r.returncode == 0, r.stderr
    out = kcat("-b", fjord.bootstrap, "-L")
    assert re.search(r"^\s*1 brokers:", out, re.M), out
    assert re.search(r"broker \d+ at 127\.0\.0\.1:%d" % fjord.port, out), out
    assert re.search(r'topic "%s" with 2 partitions' % re.escape(topic), out), out


def test_produce_consume_round_trip(fjord, topic):
    lines = ["kcat line %d" % i for i in range(50)]
    kcat("-b", fjord.bootstrap, "-t", topic, "-P", "-p", "0", "-X", "acks=all", input="\n".join(lines) + "\n")
    out = kcat("-b", fjord.bootstrap, "-t", topic, "-C", "-p", "0", "-o", "beginning", "-e", "-q")
    assert out.splitlines() == lines
