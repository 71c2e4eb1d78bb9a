-- The forge answered with a limit: a class (or '*', all of them) of a credential pauses for
-- every process until the time it gave; a pause never shortens a longer one.
-- KEYS[1] the pauses (hash: class → until ms)   ARGV[1] the class   ARGV[2] the wait (ms)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = tonumber(ARGV[2])
local untils = now_ms + wait
local old = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if old < untils then
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', untils))
end
if redis.call('PTTL', KEYS[1]) < wait then
  redis.call('PEXPIRE', KEYS[1], wait + 1000)
end
return 1
