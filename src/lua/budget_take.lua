-- The API budget's ask (src/budget/gcra.rs states the rule; this is the same rule on Redis's
-- clock, atomic over every process).
-- KEYS[1] the class's theoretical arrival time (µs)   KEYS[2] the leases (zset, score: expiry ms)
-- KEYS[3] the hourly limit (hash limit, remaining, reset_ms)   KEYS[4] the pauses (hash: class → until ms)
-- ARGV[1] cost (points)   ARGV[2] interval (µs per point)   ARGV[3] tolerance (µs)
-- ARGV[4] in-flight requests at or above which to wait   ARGV[5] hourly reserve (per mille)
-- ARGV[6] the lease's id   ARGV[7] the lease's life (ms)   ARGV[8] the class (pause field)
-- Returns {1, lease} or {0, wait_ms, reason}.
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

local paused = 0
local p = redis.call('HMGET', KEYS[4], ARGV[8], '*')
for i = 1, 2 do
  local v = tonumber(p[i] or '0') or 0
  if v > paused then paused = v end
end
if paused > now_ms then
  return {0, paused - now_ms, 'paused'}
end

local prim = redis.call('HMGET', KEYS[3], 'limit', 'remaining', 'reset_ms')
local limit, remaining, reset = tonumber(prim[1]), tonumber(prim[2]), tonumber(prim[3])
if limit and remaining and reset then
  if reset > now_ms and remaining * 1000 <= limit * tonumber(ARGV[5]) then
    return {0, reset - now_ms, 'primary'}
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return {0, 100, 'concurrency'}
end

local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now_us then tat = now_us end
local new_tat = tat + tonumber(ARGV[1]) * tonumber(ARGV[2])
local allow_at = new_tat - tonumber(ARGV[3])
if allow_at > now_us then
  return {0, math.ceil((allow_at - now_us) / 1000), 'rate'}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX',
  math.ceil((new_tat - now_us) / 1000) + 1000)
local lease_ms = tonumber(ARGV[7])
redis.call('ZADD', KEYS[2], now_ms + lease_ms, ARGV[6])
redis.call('PEXPIRE', KEYS[2], lease_ms + 1000)
return {1, ARGV[6]}
