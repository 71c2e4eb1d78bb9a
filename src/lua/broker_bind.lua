-- KEYS the credential record. ARGV the instance's address, its signed identity ('' for none).
-- Binds an existing record to an address and, when ARGV[2] is not empty, a signed instance
-- identity, once.
local addr = redis.call('HGET', KEYS[1], 'addr')
if not addr then return 0 end
if addr ~= '' and addr ~= ARGV[1] then return -1 end
local ident = redis.call('HGET', KEYS[1], 'ident') or ''
if ident ~= '' and ARGV[2] ~= '' and ident ~= ARGV[2] then return -1 end
redis.call('HSET', KEYS[1], 'addr', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'ident', ARGV[2]) end
return 1
