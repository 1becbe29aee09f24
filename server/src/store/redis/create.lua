-- create.lua: creates a pending approval, or finds the one that owns the
-- idempotency key. Loaded as a write script (`#!lua` prepended), so Redis
-- refuses it whole, before it runs, when it refuses writes (OOM, READONLY).
-- KEYS[1] approval hash, KEYS[2] idempotency key (requester + key -> id),
-- KEYS[3] pending index (zset by deadline), KEYS[4] time index (zset by id,
-- lexicographic; UUIDv7 ids sort by creation), KEYS[5] event stream,
-- KEYS[6] open counts (hash: requester -> pending approvals).
-- ARGV[1] id, ARGV[2] body, ARGV[3] timeout_ms, ARGV[4] ttl_ms (until the
-- deadline plus retention), ARGV[5] lowest id still within retention,
-- ARGV[6] maxlen, ARGV[7] '1' when an idempotency key is used,
-- ARGV[8] requester, ARGV[9] the most pending approvals it may hold,
-- ARGV[10] the request's fingerprint, ARGV[11] the approval key prefix
-- (KEYS[1] without the id), ARGV[12] distinct approvals needed (its policy's),
-- ARGV[13] its expiry reason when not the default ('' otherwise),
-- ARGV[14] reminder offsets (ms after creation, comma-separated, '' for none).
-- KEYS[7] reminders (zset: id by when its next reminder is due).
-- The one key not in KEYS is the owner's hash, ARGV[11] .. (the id read from
-- KEYS[2]): it cannot be named before the script reads it, and it carries
-- the same hash tag as every KEYS entry, so on a Redis Cluster it is in the
-- same slot (Redis allows that).
-- Times come from Redis's own clock (TIME), the one clock of every replica:
-- created = now, deadline = now + timeout (ms since the epoch).
-- Returns { 'created', created, deadline }; { 'exists', body, status, by,
-- reason, at, created, deadline, votes } when
-- this id exists already (a retry of this very call) or the key belongs to
-- an approval made by the same request (same fingerprint); the same shape
-- with 'conflict' when the key belongs to a different request; { 'quota' }
-- when the requester holds ARGV[9] pending approvals already.
local function found(outcome, key)
  local f = redis.call('HMGET', key, 'body', 'status', 'by', 'reason', 'at', 'created', 'deadline',
    'votes')
  return { outcome, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '',
    f[7] or '', f[8] or '' }
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return found('exists', KEYS[1])
end
if ARGV[7] == '1' then
  local owner = redis.call('GET', KEYS[2])
  local owner_key = owner and (ARGV[11] .. owner)
  -- A key whose approval aged out (its TTL was fixed at creation) is free.
  if owner_key and redis.call('EXISTS', owner_key) == 1 then
    local fingerprint = redis.call('HGET', owner_key, 'fp')
    if fingerprint and fingerprint ~= ARGV[10] then
      return found('conflict', owner_key)
    end
    return found('exists', owner_key)
  end
end
if tonumber(redis.call('HGET', KEYS[6], ARGV[8]) or '0') >= tonumber(ARGV[9]) then
  return { 'quota' }
end
local time = redis.call('TIME')
local created = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local deadline = created + tonumber(ARGV[3])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
end
redis.call('HINCRBY', KEYS[6], ARGV[8], 1)
redis.call('HSET', KEYS[1], 'body', ARGV[2], 'status', 'pending', 'created', created,
  'deadline', deadline, 'requester', ARGV[8], 'fp', ARGV[10])
if ARGV[12] ~= '1' then
  redis.call('HSET', KEYS[1], 'need', ARGV[12])
end
if ARGV[13] ~= '' then
  redis.call('HSET', KEYS[1], 'xreason', ARGV[13])
end
if ARGV[14] ~= '' then
  -- The first reminder, if it comes before the deadline.
  local first = created + tonumber(string.match(ARGV[14], '^[0-9]+'))
  redis.call('HSET', KEYS[1], 'remind', ARGV[14], 'reminded', 0)
  if first < deadline then
    redis.call('ZADD', KEYS[7], first, ARGV[1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
redis.call('ZREMRANGEBYLEX', KEYS[4], '-', '(' .. ARGV[5])
-- The entry is small: no body (readers that need it read the hash).
local entry = { 'kind', 'added', 'id', ARGV[1], 'status', 'pending', 'created', created,
  'deadline', deadline }
if ARGV[14] ~= '' then
  entry[#entry + 1] = 'remind'
  entry[#entry + 1] = ARGV[14]
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(entry))
return { 'created', tostring(created), tostring(deadline) }
