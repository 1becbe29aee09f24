-- decide.lua: records a human decision, first one wins.
-- KEYS and ARGV: see finish() in finish.lua; ARGV[2] is approved | rejected.
-- Returns reply(): 'done' when this call decided; 'final' when it was already
-- final (the caller compares decision and responder to tell a retry from a
-- conflict); 'expired' when the deadline had passed; 'missing'.
if ARGV[2] ~= 'approved' and ARGV[2] ~= 'rejected' then
  return redis.error_reply('decide.lua: status must be approved or rejected')
end
return finish()
