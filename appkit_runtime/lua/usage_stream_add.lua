-- Append usage entries to one stream shard, capped near a length (MAXLEN ~).
-- KEYS: the stream. ARGV: the cap (0: none), the number of field/value items per entry, then
-- the entries' items one entry after another.
-- Returns {entries appended, 1 when the cap removed entries a consumer group had not
-- acknowledged (or no group reads the stream yet), else 0}.
local cap = tonumber(ARGV[1])
local width = tonumber(ARGV[2])
local count = (#ARGV - 2) / width

local function append(trim)
  for e = 0, count - 1 do
    local fields = {}
    for i = 3 + e * width, 2 + (e + 1) * width do
      fields[#fields + 1] = ARGV[i]
    end
    if trim then
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', cap, '*', unpack(fields))
    else
      redis.call('XADD', KEYS[1], '*', unpack(fields))
    end
  end
end

if cap == 0 then
  append(false)
  return {count, 0}
end

local function first_id()
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  return first and first[1] or false
end

local function before(a, b)
  local a_ms, a_seq = string.match(a, '(%d+)-(%d+)')
  local b_ms, b_seq = string.match(b, '(%d+)-(%d+)')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < tonumber(b_seq))
end

local length = redis.call('XLEN', KEYS[1])
append(true)
if redis.call('XLEN', KEYS[1]) == length + count then
  return {count, 0}
end

-- Entries were trimmed: every entry older than the oldest one kept is gone.
local first = first_id()
local stream = redis.call('XINFO', 'STREAM', KEYS[1])
local added = nil
for i = 1, #stream, 2 do
  if stream[i] == 'entries-added' then
    added = tonumber(stream[i + 1])
  end
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return {count, 1}
end
for _, group in ipairs(groups) do
  local info = {}
  for i = 1, #group, 2 do
    info[group[i]] = group[i + 1]
  end
  -- Redis 7 counts the entries a group has read: fewer than the entries logically before
  -- the oldest kept means some were removed unread. Older servers: the group's last read
  -- entry is older than the oldest kept (can warn once when a group is exactly caught up).
  local read = tonumber(info['entries-read'])
  if added and read then
    if read < added - redis.call('XLEN', KEYS[1]) then
      return {count, 1}
    end
  elseif before(info['last-delivered-id'], first) then
    return {count, 1}
  end
  if tonumber(info['pending']) > 0 then
    local oldest_pending = redis.call('XPENDING', KEYS[1], info['name'])[2]
    if before(oldest_pending, first) then
      return {count, 1}
    end
  end
end
return {count, 0}
