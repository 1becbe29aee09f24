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
local votes = {}
if f[8] and f[8] ~= '' then
  votes = cjson.decode(f[8])
end
local approvals = 0
for _, v in ipairs(votes) do
  if v.voter == voter then
    return reply('voted', f)
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
if decision == 'reject' or approvals >= (tonumber(f[9] or '1') or 1) then
  finalize(id, status, voter, reason, now, retention_ms, maxlen, f, encoded)
  return reply('done', f)
end
f[8] = encoded
redis.call('HSET', KEYS[1], 'votes', encoded)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
  'kind', 'updated', 'id', id, 'status', 'pending',
  'created', f[6] or '', 'deadline', f[7], 'votes', encoded)
return reply('recorded', f)
