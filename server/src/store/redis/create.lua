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
-- ARGV[10] the request's fingerprint (of the timeout as requested; stored
-- as 'fp2'), ARGV[11] the approval key prefix
-- (KEYS[1] without the id), ARGV[12] distinct approvals needed (its policy's),
-- ARGV[13] its expiry reason when not the default ('' otherwise),
-- ARGV[14] reminder offsets (ms after creation, comma-separated, '' for none).
-- ARGV[15] the creating call's trace context ('' for none; field 'trace').
-- KEYS[7] reminders (zset: id by when its next reminder is due).
-- The one key not in KEYS is the owner's hash, ARGV[11] .. (the id read from
-- KEYS[2]): it cannot be named before the script reads it, and it carries
-- the same hash tag as every KEYS entry, so on a Redis Cluster it is in the
-- same slot (Redis allows that).
-- Times come from Redis's own clock (TIME), the one clock of every replica:
-- created = now, deadline = now + timeout (ms since the epoch).
-- Returns { 'created', created, deadline }; { 'exists', body, status, by,
-- reason, at, created, deadline, votes, fp2 } when
-- this id exists already (a retry of this very call) or the key belongs to
-- an approval made by the same request (same fingerprint); the same shape
-- with 'conflict' when the key belongs to a different request; { 'quota' }
-- when the requester holds ARGV[9] pending approvals already.
-- Fingerprints: 'fp2' is of the timeout as requested. Records of older
-- versions have 'fp' (of the resolved timeout) or none: this script does
-- not judge them, it answers 'exists' with an empty fp2 and the replica
-- compares (tolerantly). Old replicas find no 'fp' on new records and
-- compare in Rust too, as they do for records older than 'fp'.
-- The approval's fields in reply order, then its request fingerprint.
local FIELDS = { 'body', 'status', 'by', 'reason', 'at', 'created', 'deadline', 'votes', 'fp2' }
local function found(outcome, f)
  return { outcome, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '',
    f[7] or '', f[8] or '', f[9] or '' }
end
-- The time index is the first thing a create writes, in the same script as
-- the hash, and it keeps an id at least as long as the hash lives: an id
-- already there is a retry of this very call (same id) that landed.
if redis.call('ZADD', KEYS[4], 'NX', 0, ARGV[1]) == 0 then
  return found('exists', redis.call('HMGET', KEYS[1], unpack(FIELDS)))
end
if ARGV[7] == '1' then
  local owner = redis.call('GET', KEYS[2])
  -- A key whose approval aged out (its TTL was fixed at creation; it has no
  -- status any more) is free.
  local f = owner and redis.call('HMGET', ARGV[11] .. owner, unpack(FIELDS))
  if f and f[2] then
    redis.call('ZREM', KEYS[4], ARGV[1])
    if f[9] and f[9] ~= ARGV[10] then
      return found('conflict', f)
    end
    return found('exists', f)
  end
end
-- Counted first, taken back when over the quota: one command when under it.
local open = redis.call('HINCRBY', KEYS[6], ARGV[8], 1)
if open > tonumber(ARGV[9]) then
  if open <= 1 then
    redis.call('HDEL', KEYS[6], ARGV[8])
  else
    redis.call('HINCRBY', KEYS[6], ARGV[8], -1)
  end
  redis.call('ZREM', KEYS[4], ARGV[1])
  return { 'quota' }
end
local time = redis.call('TIME')
local created = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local deadline = created + tonumber(ARGV[3])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
end
local fields = { 'body', ARGV[2], 'status', 'pending', 'created', created,
  'deadline', deadline, 'requester', ARGV[8], 'fp2', ARGV[10] }
local function field(name, value)
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
if ARGV[12] ~= '1' then
  field('need', ARGV[12])
end
if ARGV[13] ~= '' then
  field('xreason', ARGV[13])
end
if ARGV[15] ~= '' then
  field('trace', ARGV[15])
end
local first_reminder
if ARGV[14] ~= '' then
  -- The first reminder, if it comes before the deadline.
  first_reminder = created + tonumber(string.match(ARGV[14], '^[0-9]+'))
  field('remind', ARGV[14])
  field('reminded', 0)
end
redis.call('HSET', KEYS[1], unpack(fields))
if first_reminder and first_reminder < deadline then
  redis.call('ZADD', KEYS[7], first_reminder, ARGV[1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
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
