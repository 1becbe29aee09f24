-- plan.lua: queues one event's deliveries and marks the event planned
-- (XACK in the consumer group), in one step: a replica dying before it
-- leaves the event to another, never half planned.
-- KEYS: the outbox keys (common.lua), then KEYS[5] the event stream.
-- ARGV: group, event id ('' for an event of another partition's log, which
--   the caller marks planned itself: another slot), max queued, max dead,
--   then per delivery three:
--   id, delivery JSON, dead letter JSON (kept instead when the queue is full).
-- A delivery already queued or dead (the event planned before) is skipped.
-- Returns how many deliveries were queued.
local now = now_ms()
local max_queued, max_dead = tonumber(ARGV[3]), tonumber(ARGV[4])
local queued = 0
for i = 5, #ARGV, 3 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], id) == 0 and redis.call('HEXISTS', KEYS[3], id) == 0 then
    if redis.call('ZCARD', KEYS[1]) < max_queued then
      redis.call('HSET', KEYS[2], id, ARGV[i + 1])
      redis.call('ZADD', KEYS[1], now, id)
      queued = queued + 1
    else
      bury_letter(id, ARGV[i + 2], now, max_dead)
    end
  end
end
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[5], ARGV[1], ARGV[2])
end
return queued
