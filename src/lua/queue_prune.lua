-- Removes consumers that hold no task and have been idle longer than ARGV[2] ms, never
-- ARGV[3] (the caller). KEYS stream. ARGV group, idle ms, caller. Atomic, so a consumer that
-- takes a task meanwhile is never removed with it. Returns how many were removed.
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[3] and tonumber(f['pending']) == 0 and tonumber(f['idle']) > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    n = n + 1
  end
end
return n
