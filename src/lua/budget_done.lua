-- A request the API budget granted has its answer: its lease ends, and the hourly limit the
-- answer reported is kept until its reset (measured from Redis's clock).
-- KEYS[1] the leases (zset)   KEYS[2] the hourly limit (hash)
-- ARGV[1] the lease   ARGV[2] limit, ARGV[3] remaining, ARGV[4] ms until the reset ('' without)
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local resets_in = tonumber(ARGV[4])
  redis.call('HSET', KEYS[2], 'limit', ARGV[2], 'remaining', ARGV[3],
    'reset_ms', string.format('%.0f', now_ms + resets_in))
  redis.call('PEXPIRE', KEYS[2], resets_in + 60000)
end
return 1
