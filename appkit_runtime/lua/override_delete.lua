-- Remove route overrides and their index entries, atomically.
--
-- KEYS[1]     index set  <prefix>:rloi:{org:project}
-- KEYS[2..n]  override hashes, one per route in ARGV (same order)
-- ARGV[1..]   route templates
--
-- Only the routes named are removed from the index, so an override set concurrently by
-- someone else stays listed. Returns how many override hashes existed.

local removed = 0
for i = 2, #KEYS do
    removed = removed + redis.call("DEL", KEYS[i])
end
if #ARGV > 0 then
    redis.call("SREM", KEYS[1], unpack(ARGV))
end
return removed
