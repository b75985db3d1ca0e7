-- Read every organisation override of the service at once, and forget expired ones.
--
-- KEYS[1]     index set  <prefix>:rlorgi:{org-overrides} (members "<org>:<route template>")
-- KEYS[2..n]  override hashes, one per member in ARGV (same order), all in KEYS[1]'s slot
-- ARGV[1..]   index members
--
-- Returns {max_requests, expiry, pttl_ms} per member ({false, false, -2} for one that is
-- gone). A member whose hash expired is removed from the index in this same atomic step,
-- so a concurrent set of that override can never be unindexed.

local replies = {}
for i = 2, #KEYS do
    local fields = redis.call("HMGET", KEYS[i], "max_requests", "expiry")
    if fields[1] and fields[2] then
        replies[i - 1] = {fields[1], fields[2], redis.call("PTTL", KEYS[i])}
    else
        redis.call("SREM", KEYS[1], ARGV[i - 1])
        replies[i - 1] = {false, false, -2}
    end
end
return replies
