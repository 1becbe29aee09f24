-- retry_later.lua: a failed delivery, due again after ARGV[3] ms, with its
-- updated record ARGV[2]. Nothing when it is no longer queued (another
-- replica delivered it meanwhile).
-- KEYS: the outbox keys (common.lua). ARGV: id, delivery JSON, delay ms.
-- Returns 1 when rescheduled, 0 when it was gone.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[1])
return 1
