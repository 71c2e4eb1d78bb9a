-- Finish (ack, retry or dead-letter) a task if this consumer still holds it.
-- KEYS stream, delayed zset, dead stream. ARGV group, consumer, entry, mode ('ack', 'delay',
-- 'dead', 'release'), payload, delay ms, error. A delay counts from Redis's clock.
-- Returns {1, due ms} when done, {0, 0} when the consumer no longer held the task.
if redis.replicate_commands then redis.replicate_commands() end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return {0, 0} end
local due = 0
if ARGV[4] == 'delay' then
  local t = redis.call('TIME')
  due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[6])
  redis.call('ZADD', KEYS[2], due, ARGV[5])
elseif ARGV[4] == 'dead' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'task', ARGV[5], 'error', ARGV[7], 'entry', ARGV[3])
elseif ARGV[4] == 'release' then
  redis.call('XADD', KEYS[1], '*', 'task', ARGV[5])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return {1, due}
