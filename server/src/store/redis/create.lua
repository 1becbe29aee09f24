-- create.lua: creates a pending approval, or finds the one that owns the
-- idempotency key.
-- KEYS[1] approval hash, KEYS[2] idempotency key (requester + key -> id),
-- KEYS[3] pending index (zset by deadline), KEYS[4] time index (zset by id,
-- lexicographic; UUIDv7 ids sort by creation), KEYS[5] event stream.
-- ARGV[1] id, ARGV[2] body, ARGV[3] deadline_ms, ARGV[4] ttl_ms (until the
-- deadline plus retention), ARGV[5] lowest id still within retention,
-- ARGV[6] maxlen, ARGV[7] '1' when an idempotency key is used,
-- ARGV[8] the id the caller saw under that key and found aged out, or '',
-- ARGV[9] requester, ARGV[10] the most pending approvals it may hold.
-- KEYS[6] open counts (hash: requester -> pending approvals).
-- Returns { 'created' }, { 'exists', id } (the key belongs to that approval),
-- or { 'quota' } (the requester holds ARGV[10] pending approvals already).
if ARGV[7] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing and existing ~= ARGV[8] then
    return { 'exists', existing }
  end
end
if tonumber(redis.call('HGET', KEYS[6], ARGV[9]) or '0') >= tonumber(ARGV[10]) then
  return { 'quota' }
end
if ARGV[7] == '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
end
redis.call('HINCRBY', KEYS[6], ARGV[9], 1)
redis.call('HSET', KEYS[1], 'body', ARGV[2], 'status', 'pending', 'deadline', ARGV[3],
  'requester', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('ZREMRANGEBYLEX', KEYS[4], '-', '(' .. ARGV[5])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',
  'kind', 'added', 'id', ARGV[1], 'body', ARGV[2], 'status', 'pending')
return { 'created' }
