-- revive.lua: a dead letter goes back to the queue, due at once, as the
-- delivery ARGV[2] (attempts reset). Two operators reviving the same one
-- at once queue it once.
-- KEYS: the outbox keys (common.lua). ARGV: id, delivery JSON.
-- Returns 1 when queued, 0 when there was no such dead letter.
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
return 1
