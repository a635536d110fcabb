"""The worker's fetch: one Lua script that pops messages and records them as delivered.

kombu's ``BRPOP`` pops a message and only then, in a second write, records it as
unacknowledged: a worker killed between the two, or a reply Redis drops as it shuts down,
loses the message. The script pops up to ``count`` messages (the consumer's free prefetch
window) and records every one of them in ``unacked`` and ``unacked_index`` in the same atomic
step, like Asynq's dequeue script, so a fetched message is always either in its queue or
recorded: a lost reply or a dead worker leaves it recorded, and the visibility timeout (or
the next worker's lease check) returns it.

The cost per call is fixed, whatever the number of queues and priorities, because Redis is one
thread and its commands per task bound how many tasks one primary carries:

* one ``SMISMEMBER`` tells which of the queues are paused (``kit queue pause``: the script
  skips them, so a pause holds from the moment the set is written);
* one ``LMPOP`` (Redis 7) over the priority lists of every queue that is not paused, in the
  order the worker chose (weighted or strict queue order, then priority 0 to 9 within each
  queue) pops from the first list that holds a message; on Redis 6.2, which has no ``LMPOP``,
  the script tries ``RPOP key count`` list by list (the old cost);
* one ``ZADD`` and one ``HSET`` record every message popped;
* acknowledgements made since the previous call ride on it: one ``HDEL`` and one ``ZREM``
  forget them all (:meth:`project.broker.qos.QoS.ack`), instead of a round trip each;
* the queues' *bells* (:data:`project.keys.queue_bell`), which publishers push to so that an
  idle worker blocked on them wakes up, are trimmed only on every ``TRIM_EVERY``-th call that
  found work (a bell only has to be non-empty, its length does not matter), and deleted when
  a call finds every queue empty, before the worker goes back to waiting on them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = ["FETCH_SCRIPT", "FETCH_SHA", "MAX_BATCH", "TRIM_EVERY", "fetch_command", "parse_reply"]

#: At most this many messages per call, whatever the prefetch window (bounded reply size).
MAX_BATCH = 64
#: Bells are trimmed on one call in this many that found work (see the module docstring).
TRIM_EVERY = 16

# KEYS: unacked hash, unacked index, paused set, then per queue (in fetch order) its bell and
# its priority lists (most urgent first). ARGV: now (the delivery time to record; empty: the
# server's clock when the script runs, for a fetch sent ahead of a wait), lists per queue, how
# many to fetch, whether LMPOP exists ("1"/"0"), whether to trim the bells ("1"/"0"), the
# number of queues, the queue names, per queue whether its messages are recorded ("1"; "0" for
# a queue consumed without acknowledgements, such as a control reply queue), then the delivery
# tags of messages acknowledged since the last call.
# Returns a flat list {list key, payload, list key, payload, ...}, empty when nothing waits.
FETCH_SCRIPT = """
local now = ARGV[1]
local steps = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local count = tonumber(ARGV[6])
local names = {}
for i = 7, 6 + count do names[#names + 1] = ARGV[i] end
if #ARGV > 6 + 2 * count then
  local acked = {}
  for i = 7 + 2 * count, #ARGV do acked[#acked + 1] = ARGV[i] end
  redis.call('hdel', KEYS[1], unpack(acked))
  redis.call('zrem', KEYS[2], unpack(acked))
end
local paused = redis.call('smismember', KEYS[3], unpack(names))
local lists = {}
local recorded = {}
for q = 1, #names do
  if paused[q] == 0 then
    local bell = 4 + (q - 1) * (steps + 1)
    for i = bell + 1, bell + steps do
      lists[#lists + 1] = KEYS[i]
      recorded[KEYS[i]] = ARGV[6 + count + q] == '1'
    end
  end
end
local out = {}
local got = 0
if #lists > 0 then
  if ARGV[4] == '1' then
    local args = {#lists}
    for _, key in ipairs(lists) do args[#args + 1] = key end
    args[#args + 1] = 'RIGHT'
    args[#args + 1] = 'COUNT'
    while got < want do
      args[#args + 1] = want - got
      local popped = redis.call('lmpop', unpack(args))
      args[#args] = nil
      if not popped then break end
      for _, payload in ipairs(popped[2]) do
        out[#out + 1] = popped[1]
        out[#out + 1] = payload
        got = got + 1
      end
    end
  else
    for _, key in ipairs(lists) do
      if got >= want then break end
      local popped = redis.call('rpop', key, want - got)
      if popped then
        for _, payload in ipairs(popped) do
          out[#out + 1] = key
          out[#out + 1] = payload
          got = got + 1
        end
      end
    end
  end
end
if got == 0 then
  for q = 1, #names do redis.call('del', KEYS[4 + (q - 1) * (steps + 1)]) end
  return out
end
if now == '' then
  local clock = redis.call('time')
  now = clock[1] .. '.' .. string.format('%06d', tonumber(clock[2]))
end
local index = {}
local records = {}
for i = 2, #out, 2 do
  if recorded[out[i - 1]] then
    local payload = out[i]
    local properties = cjson.decode(payload)['properties']
    local delivery = properties['delivery_info']
    local tag = properties['delivery_tag']
    index[#index + 1] = now
    index[#index + 1] = tag
    records[#records + 1] = tag
    records[#records + 1] = '[' .. payload .. ',' .. cjson.encode(delivery['exchange']) .. ','
      .. cjson.encode(delivery['routing_key']) .. ']'
  end
end
if #index > 0 then
  redis.call('zadd', KEYS[2], unpack(index))
  redis.call('hset', KEYS[1], unpack(records))
end
if ARGV[5] == '1' then
  for q = 1, #names do redis.call('ltrim', KEYS[4 + (q - 1) * (steps + 1)], 0, 0) end
end
return out
"""

#: What Redis names the script by, once an EVAL of it has cached it (EVALSHA).
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode()).hexdigest()


def fetch_command(
    script_keys: Sequence[str],
    lists_per_queue: int,
    queues: Sequence[str],
    count: int,
    *,
    now: float | None,
    lmpop: bool,
    trim: bool,
    acked: Sequence[str] = (),
    unrecorded: frozenset[str] | set[str] = frozenset(),
    sha: str | None = None,
) -> list[Any]:
    """The command (as arguments) fetching up to ``count`` messages from ``queues``: ``EVALSHA``
    of ``sha`` (the script's SHA-1, once loaded), else ``EVAL`` of its source.

    ``script_keys`` are the script's KEYS, laid out as the script's comment says; ``acked``
    are delivery tags to forget first (acknowledgements that ride on the fetch); messages of
    the ``unrecorded`` queues (consumed without acknowledgements) are popped, not recorded.
    ``now`` is the delivery time recorded for the lease; None records the time the script
    runs, by Redis's clock (a fetch queued behind a ``BLPOP`` runs when the bell rings).
    """
    return [
        "EVALSHA" if sha else "EVAL",
        sha or FETCH_SCRIPT,
        len(script_keys),
        *script_keys,
        "" if now is None else now,
        lists_per_queue,
        max(1, min(count, MAX_BATCH)),
        "1" if lmpop else "0",
        "1" if trim else "0",
        len(queues),
        *queues,
        *("0" if queue in unrecorded else "1" for queue in queues),
        *acked,
    ]


def parse_reply(reply: Any) -> list[tuple[bytes, bytes]]:
    """The script's flat reply as ``(list key, payload)`` pairs, in fetch order."""
    if not reply:
        return []
    return list(zip(reply[0::2], reply[1::2], strict=True))
