"""A small faust-streaming app for tests/faust/run: an agent counts words into a Table.

The Table has a changelog topic and an in-memory store, so after a restart the worker rebuilds
the counts by reading the changelog, then resumes the input topic from the committed offsets.

Every processed record appends one JSON line to $FAUST_PROCESSED_LOG (run, record id, word,
count after the increment, partition, offset), which is what the driver checks: each record
should be processed exactly once across the two runs.

Settings come from the environment (the driver sets them):
  FAUST_BROKER         kafka://127.0.0.1:PORT
  FAUST_APP_ID         group id and prefix of the changelog topic (fresh per test)
  FAUST_TOPIC          input topic
  FAUST_DATADIR        worker data dir
  FAUST_PROCESSED_LOG  the JSON-lines file described above
  FAUST_RUN            label of this worker run (1, 2)
  FAUST_FIX_RECOVERY_SEEK=1  apply seekfix.py (a workaround for faust's duplicate; see there)
"""
import json
import os
import time

import faust

env = os.environ
if env.get("FAUST_FIX_RECOVERY_SEEK") == "1":
    import seekfix

    seekfix.install()
app = faust.App(
    env["FAUST_APP_ID"],
    broker=env["FAUST_BROKER"],
    store="memory://",
    datadir=env["FAUST_DATADIR"],
    topic_partitions=4,
    topic_replication_factor=1,
    web_enabled=False,
)


class Word(faust.Record, serializer="json"):
    id: str
    word: str


words = app.topic(env["FAUST_TOPIC"], key_type=str, value_type=Word, partitions=4)
counts = app.Table("counts", default=int, partitions=4)


@app.agent(words)
async def count_words(stream):
    async for event in stream.events():
        w = event.value
        counts[w.word] += 1
        line = {
            "run": env["FAUST_RUN"],
            "t": time.strftime("%H:%M:%S") + f".{int(time.time() * 1000) % 1000:03d}",
            "id": w.id,
            "word": w.word,
            "count": counts[w.word],
            "partition": event.message.partition,
            "offset": event.message.offset,
        }
        with open(env["FAUST_PROCESSED_LOG"], "a") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()


if __name__ == "__main__":
    app.main()
