-- cancel.lua: the requester withdraws a pending approval.
-- KEYS and ARGV: see finish() in finish.lua; ARGV[2] is cancelled.
-- Returns reply() as decide.lua does.
if ARGV[2] ~= 'cancelled' then
  return redis.error_reply('cancel.lua: status must be cancelled')
end
return finish()
