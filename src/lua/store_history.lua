-- A runner's history: KEYS the history list. ARGV event, detail, entries kept, TTL seconds.
-- Appends `{"at": Redis seconds, "event", "detail"}`.
local at = tonumber(redis.call('TIME')[1])
redis.call('RPUSH', KEYS[1], cjson.encode({at = at, event = ARGV[1], detail = ARGV[2]}))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return 1
