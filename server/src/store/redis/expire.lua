-- expire.lua: expires one pending approval whose deadline has passed. Every
-- replica's reaper may call it for the same id at once: only one gets 'expired'.
-- KEYS: as finish.lua. ARGV: id, retention_ms, maxlen, expired_reason.
-- Due means: by Redis's clock (TIME), not the calling replica's.
-- Returns reply('expired') when this call expired it, { 'no' } otherwise.
local id, now = ARGV[1], now_ms()
local f = read()
if not f[2] then
  -- The record is gone (evicted): drop its stale index entry.
  redis.call('ZREM', KEYS[2], id)
  return { 'no' }
end
if f[2] ~= 'pending' then
  return { 'no' }
end
local deadline = tonumber(f[7])
if deadline > now then
  return { 'no' }
end
finalize(id, 'expired', '', expiry_reason(ARGV[4]), deadline, ARGV[2], ARGV[3], f)
return reply('expired', f)
