-- take_due.lua: leases up to ARGV[1] due deliveries to the caller for
-- ARGV[2] ms (their due time moves to the end of the lease, so a replica
-- that dies mid-delivery leaves them due again for another).
-- KEYS: the outbox keys (common.lua).
-- Returns the deliveries (JSON), earliest due first.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local delivery = redis.call('HGET', KEYS[2], id)
  if delivery then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    table.insert(out, delivery)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
