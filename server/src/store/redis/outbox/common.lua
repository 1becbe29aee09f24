-- common.lua: helpers of the webhook outbox scripts (prepended to each).
-- The outbox keys, in this order in every script's KEYS:
--   KEYS[1] due     zset  delivery id -> when it is due (or its lease ends), ms
--   KEYS[2] queued  hash  delivery id -> delivery (JSON)
--   KEYS[3] dead    hash  delivery id -> dead letter (JSON)
--   KEYS[4] order   zset  delivery id -> when it died, ms (caps `dead`)

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Keeps a dead letter, dropping the oldest beyond max_dead.
local function bury_letter(id, letter, now, max_dead)
  redis.call('HSET', KEYS[3], id, letter)
  redis.call('ZADD', KEYS[4], now, id)
  local extra = redis.call('ZCARD', KEYS[4]) - max_dead
  if extra > 0 then
    local old = redis.call('ZRANGE', KEYS[4], 0, extra - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, extra - 1)
    redis.call('HDEL', KEYS[3], unpack(old))
  end
end
