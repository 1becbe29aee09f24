-- Shared prelude of decide.lua, cancel.lua and expire.lua (prepended to each
-- at build time). An approval is a hash:
--   body      protobuf-encoded approval.v1.Approval (the immutable fields)
--   status    pending | approved | rejected | expired | cancelled
--   deadline  ms since the epoch
--   requester the principal that created it (for the open counts)
--   by, reason, at   set once, when it becomes final (at = ms since the epoch)
--
-- Every script that finishes an approval takes the same keys:
--   KEYS[1] the approval hash, KEYS[2] the pending index (zset by deadline),
--   KEYS[3] the event stream, KEYS[4] open counts (hash: requester -> pending)
-- and ends with `reply(outcome)`: { outcome, body, status, by, reason, at }
-- where outcome is done | expired | final | missing.

local function reply(outcome)
  local f = redis.call('HMGET', KEYS[1], 'body', 'status', 'by', 'reason', 'at')
  return { outcome, f[1] or '', f[2] or '', f[3] or '', f[4] or '', f[5] or '' }
end

-- Makes the pending approval final, drops it from the pending index, keeps it
-- for `retention_ms`, and appends a `resolved` event (capped at `maxlen`).
local function finalize(id, status, by, reason, at, retention_ms, maxlen)
  redis.call('HSET', KEYS[1], 'status', status, 'by', by, 'reason', reason, 'at', at)
  redis.call('ZREM', KEYS[2], id)
  local requester = redis.call('HGET', KEYS[1], 'requester')
  if requester and redis.call('HINCRBY', KEYS[4], requester, -1) <= 0 then
    redis.call('HDEL', KEYS[4], requester)
  end
  redis.call('PEXPIRE', KEYS[1], retention_ms)
  local body = redis.call('HGET', KEYS[1], 'body')
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
    'kind', 'resolved', 'id', id, 'body', body, 'status', status,
    'by', by, 'reason', reason, 'at', at)
end

-- Ends the approval with `status` unless it is final already; past its
-- deadline it expires instead, so a response racing the deadline gets exactly
-- one answer. ARGV: id, status, by, reason, now_ms, retention_ms, maxlen,
-- expired_reason.
local function finish()
  local id, status, by, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  local now, retention_ms, maxlen, expired_reason = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
  local current = redis.call('HGET', KEYS[1], 'status')
  if not current then
    return { 'missing' }
  end
  if current ~= 'pending' then
    return reply('final')
  end
  local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline'))
  if deadline <= now then
    finalize(id, 'expired', '', expired_reason, deadline, retention_ms, maxlen)
    return reply('expired')
  end
  finalize(id, status, by, reason, now, retention_ms, maxlen)
  return reply('done')
end
