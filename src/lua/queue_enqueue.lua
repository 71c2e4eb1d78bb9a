-- Enqueue: KEYS stream, dedup key, second dedup key (placeholders when unused). ARGV payload,
-- ttl secs, how many of the two keys are used (0, 1 or 2). Seen under either key: nothing added.
local n = tonumber(ARGV[3])
for i = 2, n + 1 do
  local seen = redis.call('GET', KEYS[i])
  if seen then return {0, seen} end
end
local id = redis.call('XADD', KEYS[1], '*', 'task', ARGV[1])
for i = 2, n + 1 do redis.call('SET', KEYS[i], id, 'EX', tonumber(ARGV[2])) end
return {1, id}
