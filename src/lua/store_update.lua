-- Update: KEYS runner hash, then the status sets in the order of ARGV 1, then the runner's
-- history list. ARGV the statuses (comma separated), new status ('' keeps it), expected
-- statuses (comma separated, '' for any), the history entry's detail, the history's length
-- and time to live (seconds), then field/value pairs ('' value deletes the field). A change of
-- status is appended to the history in the same step (no second round trip).
-- Returns {'missing'} or {'refused', current} or {'done', previous, the record's fields and
-- values as HGETALL gives them after the change} (no second round trip to read it).
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'missing'} end
if ARGV[3] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[3], '[^,]+') do if s == cur then ok = true end end
  if not ok then return {'refused', cur} end
end
local name = redis.call('HGET', KEYS[1], 'name')
if ARGV[2] ~= '' and ARGV[2] ~= cur then
  redis.call('SREM', status_key(ARGV[1], 2, cur), name)
  redis.call('SADD', status_key(ARGV[1], 2, ARGV[2]), name)
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
end
for i = 7, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i])
  else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if ARGV[2] ~= '' and ARGV[2] ~= cur then
  local h = KEYS[#KEYS]
  redis.call('RPUSH', h, cjson.encode({at = now_secs(), event = ARGV[2], detail = ARGV[4]}))
  redis.call('LTRIM', h, -tonumber(ARGV[5]), -1)
  redis.call('EXPIRE', h, tonumber(ARGV[6]))
end
local out = {'done', cur}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
