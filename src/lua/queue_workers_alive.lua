-- How many workers were heard of within ARGV[1] seconds (Redis's clock). KEYS workers zset.
local now = tonumber(redis.call('TIME')[1])
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
