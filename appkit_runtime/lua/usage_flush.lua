-- One project's usage counts, applied at most once per flush.
-- KEYS: the process's flush marker, the all-time hash, then the day hashes.
-- ARGV: the flush's sequence number, the marker's TTL, then each day hash's expiry time
-- (unix seconds; 0 keeps it), then (day index, field, n) triples.
local seq = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1])) or 0
if seq <= last then
  return 0
end
local days = #KEYS - 2
for i = 3 + days, #ARGV, 3 do
  local n = tonumber(ARGV[i + 2])
  redis.call('HINCRBY', KEYS[2 + tonumber(ARGV[i])], ARGV[i + 1], n)
  redis.call('HINCRBY', KEYS[2], ARGV[i + 1], n)
end
for d = 1, days do
  local at = tonumber(ARGV[2 + d])
  if at > 0 then
    redis.call('EXPIREAT', KEYS[2 + d], at)
  end
end
redis.call('SET', KEYS[1], seq, 'EX', tonumber(ARGV[2]))
return 1
