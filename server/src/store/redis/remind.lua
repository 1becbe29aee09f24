-- remind.lua: writes an approval's next reminder when it is due. Every
-- replica's reminder task may call it for the same id at once: the count in
-- `reminded` makes each reminder written once.
-- KEYS[1] approval hash, KEYS[2] reminders (zset: id by next reminder due),
-- KEYS[3] event stream. ARGV[1] id, ARGV[2] maxlen.
-- "Now" is Redis's clock (TIME).
-- Returns { 'reminded', n, body, status, by, reason, at, created, deadline,
-- votes } when this call wrote reminder n (1-based), { 'no' } otherwise.
local id = ARGV[1]
local f = redis.call('HMGET', KEYS[1], 'status', 'created', 'deadline', 'remind', 'reminded')
if f[1] ~= 'pending' or not f[4] then
  -- Final, gone or without reminders: nothing more to send.
  redis.call('ZREM', KEYS[2], id)
  return { 'no' }
end
local offsets = {}
for ms in string.gmatch(f[4], '[0-9]+') do
  offsets[#offsets + 1] = tonumber(ms)
end
local created, deadline = tonumber(f[2]), tonumber(f[3])
local n = (tonumber(f[5] or '0') or 0) + 1
local offset = offsets[n]
if not offset or created + offset >= deadline then
  redis.call('ZREM', KEYS[2], id)
  return { 'no' }
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if created + offset > now then
  redis.call('ZADD', KEYS[2], created + offset, id)
  return { 'no' }
end
redis.call('HSET', KEYS[1], 'reminded', n)
local g = redis.call('HMGET', KEYS[1], 'body', 'votes')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*',
  'kind', 'reminder', 'reminder', n, 'id', id, 'status', 'pending',
  'created', f[2], 'deadline', f[3], 'votes', g[2] or '')
local next = offsets[n + 1]
if next and created + next < deadline then
  redis.call('ZADD', KEYS[2], created + next, id)
else
  redis.call('ZREM', KEYS[2], id)
end
return { 'reminded', tostring(n), g[1], 'pending', '', '', '', f[2], f[3], g[2] or '' }
