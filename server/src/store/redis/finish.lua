-- Shared prelude of decide.lua, cancel.lua and expire.lua (prepended to each
-- at build time). An approval is a hash:
--   body      protobuf-encoded approval.v1.Approval (the immutable fields)
--   status    pending | approved | rejected | expired | cancelled
--   created, deadline  ms since the epoch, by Redis's clock (they override
--             the body's, which are the creating replica's estimate)
--   requester the principal that created it (for the open counts)
--   by, reason, at   set once, when it becomes final (at = ms since the epoch)
--   need      distinct approvals it needs (its policy's required_approvals;
--             absent: 1)
--   votes     JSON array of { voter, decision, reason, at } (absent: none)
--   xreason   the reason it gets at its deadline, when its policy says
--             something other than the default (on_timeout = approve)
--   remind    its policy's reminder offsets (ms after created, comma-separated)
--   reminded  how many reminders were written so far
--
-- Every script that finishes an approval takes the same keys:
--   KEYS[1] the approval hash, KEYS[2] the pending index (zset by deadline),
--   KEYS[3] the event stream, KEYS[4] open counts (hash: requester -> pending)
-- and ends with `reply(outcome, f)`: { outcome, body, status, by, reason, at,
-- created, deadline, votes } where outcome is done | expired | final |
-- missing (and for votes: recorded | voted).
-- "Now" is Redis's own clock (TIME): one clock for every replica, whatever
-- their wall clocks say.

-- The approval's fields: those of reply() in order, then need and requester
-- (false where absent). One read serves a whole script.
local function read()
  return redis.call('HMGET', KEYS[1], 'body', 'status', 'by', 'reason', 'at', 'created',
    'deadline', 'votes', 'need', 'requester')
end

-- `f`: the fields as read() returned them (and finalize() updated them).
local function reply(outcome, f)
  return { outcome, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '',
    f[7] or '', f[8] or '' }
end

-- The reason of an expiry: the approval's own (its policy's) or `default`.
local function expiry_reason(default)
  return redis.call('HGET', KEYS[1], 'xreason') or default
end

-- Redis's clock, in ms since the epoch.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Makes the pending approval final, drops it from the pending index, keeps it
-- for `retention_ms`, and appends a `resolved` event (capped at `maxlen`).
-- `f`: its fields as read() returned them; updated here to the final state.
-- `votes`: its new votes (JSON) to write with the ending, if they changed.
-- Event entries never carry the body: it stays in the hash.
local function finalize(id, status, by, reason, at, retention_ms, maxlen, f, votes)
  f[2], f[3], f[4], f[5] = status, by, reason, tostring(at)
  if votes then
    f[8] = votes
    redis.call('HSET', KEYS[1], 'status', status, 'by', by, 'reason', reason, 'at', at,
      'votes', votes)
  else
    redis.call('HSET', KEYS[1], 'status', status, 'by', by, 'reason', reason, 'at', at)
  end
  redis.call('ZREM', KEYS[2], id)
  local requester = f[10]
  if requester and redis.call('HINCRBY', KEYS[4], requester, -1) <= 0 then
    redis.call('HDEL', KEYS[4], requester)
  end
  redis.call('PEXPIRE', KEYS[1], retention_ms)
  -- The entry is small: the decision, no body (readers that need it read
  -- the hash).
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
    'kind', 'resolved', 'id', id, 'status', status,
    'by', by, 'reason', reason, 'at', at, 'created', f[6] or '', 'deadline', f[7] or '',
    'votes', f[8] or '')
end

-- Ends the approval with `status` unless it is final already; past its
-- deadline it expires instead, so a response racing the deadline gets exactly
-- one answer. ARGV: id, status, by, reason, retention_ms, maxlen,
-- expired_reason.
local function finish()
  local id, status, by, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local retention_ms, maxlen, expired_reason = ARGV[5], ARGV[6], ARGV[7]
  local now = now_ms()
  local f = read()
  if not f[2] then
    return { 'missing' }
  end
  if f[2] ~= 'pending' then
    return reply('final', f)
  end
  local deadline = tonumber(f[7])
  if deadline <= now then
    finalize(id, 'expired', '', expiry_reason(expired_reason), deadline, retention_ms, maxlen, f)
    return reply('expired', f)
  end
  finalize(id, status, by, reason, now, retention_ms, maxlen, f)
  return reply('done', f)
end
