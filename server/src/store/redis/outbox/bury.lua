-- bury.lua: a delivery given up on moves from the queue to the dead letters
-- (capped at ARGV[3], oldest dropped). Nothing when it is no longer queued.
-- KEYS: the outbox keys (common.lua). ARGV: id, dead letter JSON, max dead.
-- Returns 1 when buried, 0 when it was gone.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
bury_letter(ARGV[1], ARGV[2], now_ms(), tonumber(ARGV[3]))
return 1
