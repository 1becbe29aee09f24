-- decide.lua: records a vote. The approval ends when it holds `need`
-- distinct approvals (approved, decided by the voter who completed it) or at
-- the first reject (rejected: a veto); until then each vote appends an
-- `updated` event. With need = 1 (the default) the first decision wins.
-- KEYS and ARGV: see finish() in finish.lua; ARGV[2] is approved | rejected,
-- ARGV[3] the voter.
-- Returns reply(): 'done' when this vote made it final; 'recorded' when the
-- vote was kept and it is still pending; 'voted' when this voter had voted
-- on it already (nothing changed: the caller tells a retry from a changed
-- vote); 'final' when it was already final; 'expired' when the deadline had
-- passed; 'missing'.
if ARGV[2] ~= 'approved' and ARGV[2] ~= 'rejected' then
  return redis.error_reply('decide.lua: status must be approved or rejected')
end
local id, status, voter, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local retention_ms, maxlen, expired_reason = ARGV[5], ARGV[6], ARGV[7]
local now = now_ms()
local f = redis.call('HMGET', KEYS[1], 'status', 'deadline', 'votes', 'need')
if not f[1] then
  return { 'missing' }
end
if f[1] ~= 'pending' then
  return reply('final')
end
local deadline = tonumber(f[2])
if deadline <= now then
  finalize(id, 'expired', '', expiry_reason(expired_reason), deadline, retention_ms, maxlen)
  return reply('expired')
end
local votes = {}
if f[3] and f[3] ~= '' then
  votes = cjson.decode(f[3])
end
local approvals = 0
for _, v in ipairs(votes) do
  if v.voter == voter then
    return reply('voted')
  end
  if v.decision == 'approve' then
    approvals = approvals + 1
  end
end
local decision = 'reject'
if status == 'approved' then
  decision = 'approve'
  approvals = approvals + 1
end
votes[#votes + 1] = { voter = voter, decision = decision, reason = reason, at = now }
local encoded = cjson.encode(votes)
redis.call('HSET', KEYS[1], 'votes', encoded)
if decision == 'reject' or approvals >= (tonumber(f[4] or '1') or 1) then
  finalize(id, status, voter, reason, now, retention_ms, maxlen)
  return reply('done')
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
  'kind', 'updated', 'id', id, 'status', 'pending',
  'created', redis.call('HGET', KEYS[1], 'created') or '', 'deadline', f[2], 'votes', encoded)
return reply('recorded')
