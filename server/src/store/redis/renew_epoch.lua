-- renew_epoch.lua: records a new epoch of the event history, once, when a
-- replica finds the history rewound (Redis restored from an older backup).
-- Several replicas may find it at once: only the first to come replaces the
-- epoch it saw; the others get the new one back.
-- KEYS: epoch. ARGV: seen_epoch, fresh_epoch.
-- Returns the epoch now recorded.
local recorded = redis.call('GET', KEYS[1])
if not recorded or recorded == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return ARGV[2]
end
return recorded
