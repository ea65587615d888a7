"""Condense a loopback capture of a tests/faust run into one line per offset-relevant message.

    python condense.py CAPTURE.pcap BROKER_PORT > condensed.txt

Decodes with tshark (`-d tcp.port==PORT,kafka -O kafka`) and keeps what decides which records
a consumer processes: OffsetFetch answers, ListOffsets questions and answers, OffsetCommit,
and Fetch (requested offsets; returned high watermark and record offsets with their ids).
Empty long-poll Fetch answers are left out. Topic names lose the per-test suffix, so the
output of a run on Fjord and one on Kafka can be compared line by line (timestamps aside).
"""
import re
import subprocess
import sys

KEEP = {"Fetch", "Offsets", "OffsetFetch", "OffsetCommit", "JoinGroup", "SyncGroup", "LeaveGroup"}


def normalize(topic):
    return re.sub(r"-?[0-9a-f]{8}(?=-|$)", "", topic)


def frames(pcap, port):
    times = {}
    out = subprocess.run(["tshark", "-r", pcap, "-T", "fields", "-e", "frame.number",
                          "-e", "frame.time_relative"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        n, t = line.split("\t")
        times[n] = float(t)
    text = subprocess.run(["tshark", "-r", pcap, "-d", f"tcp.port=={port},kafka", "-O", "kafka"],
                          capture_output=True, text=True, check=True).stdout
    frame = None
    for line in text.splitlines():
        m = re.match(r"Frame (\d+):", line)
        if m:
            frame = m.group(1)
        yield times.get(frame, 0.0), line


def condense(pcap, port):
    pdu = None  # [time, api, version, kind, corr, parts]
    topic, part, rec_indent, rec_off = None, None, None, None
    results = []

    def flush():
        if pdu and pdu[1] in KEEP:
            t, api, ver, kind, corr, parts = pdu
            if api == "Fetch" and kind == "Response" and not any("records" in p for p in parts):
                return
            results.append(f"{t:9.3f} {api} v{ver} {kind:8} corr={corr} " + " ".join(parts))

    for t, line in frames(pcap, port):
        m = re.match(r"Kafka \((\w+) v(\d+) (Request|Response)\)", line)
        if m:
            flush()
            pdu = [t, m.group(1), m.group(2), m.group(3), "?", []]
            topic = part = rec_indent = None
            continue
        if pdu is None or line.startswith("Frame "):
            if line.startswith("Frame "):
                flush()
                pdu = None
            continue
        indent = len(line) - len(line.lstrip())
        s = line.strip()
        api, kind, parts = pdu[1], pdu[3], pdu[5]
        if s.startswith("Correlation ID:"):
            pdu[4] = s.split(":")[1].strip()
        elif s.startswith("Topic Name:"):
            topic = normalize(s.split(":", 1)[1].strip())
            parts.append(f"[{topic}]")
        elif s.startswith("Consumer Group Member ID:") or s.startswith("Generation ID:"):
            parts.append(s.replace("Consumer Group Member ID: ", "member=")
                         .replace("Generation ID: ", "gen="))
        elif re.match(r"Partition \(ID=", s):
            m = re.match(r"Partition \(ID=(\d+)(?:, Offset=([-\w]+))?\)", s)
            part = m.group(1)
            if api == "Fetch" and kind == "Request":
                parts.append(f"p{part}@{m.group(2)}")
            elif api == "Fetch":
                parts.append(f"p{part}:hw={m.group(2)}")
        elif s == "Record":
            rec_indent = indent
        elif rec_indent is not None and indent > rec_indent:
            if s.startswith("Offset:"):
                rec_off = s.split(":")[1].strip()
            elif s.startswith("Value:"):
                rid = re.search(r'"id": "(\w+)"', s)
                parts.append(f"records:{rec_off}={rid.group(1) if rid else '?'}")
        else:
            rec_indent = None if rec_indent is not None and indent <= rec_indent else rec_indent
            if api in ("OffsetFetch", "OffsetCommit", "Offsets") and s.startswith("Offset:") and part is not None:
                parts.append(f"p{part}={s.split(':')[1].strip()}")
            elif api == "Offsets" and s.startswith("Time:") and kind == "Request":
                parts.append(f"p{part}?{s.split(':', 1)[1].strip()}")
            elif s.startswith("Error:") and "No Error" not in s:
                parts.append(f"ERROR({s.split(':', 1)[1].strip()})")
    flush()
    return results


if __name__ == "__main__":
    for line in condense(sys.argv[1], sys.argv[2]):
        print(line)
