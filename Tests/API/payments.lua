-- wrk script for Tests/API/load.sh: each thread sends its own share of the prepared QR
-- payments (qdwallet-bench api-load: one signed payment a line), each exactly once, and
-- counts the answers by status. Arguments: THREADS FILE [PERIOD-MS per thread].
--
-- With a period, each thread sends at a fixed rate: every request gets the thread's next free
-- slot on a schedule one period apart (the monotonic clock, through LuaJIT's ffi), so the
-- rate is the one asked for while the server keeps up, whatever its latency; when it falls
-- behind, requests go as soon as a connection is free (no burst to catch up), and the rate
-- wrk prints is what it managed.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } qd_timespec;
int clock_gettime(int clock, qd_timespec *now);
]]
local clock = ffi.new("qd_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local total = tonumber(args[1])
  period = tonumber(args[3] or "0")
  next_free = 0
  lines = {}
  local n = 0
  for line in io.lines(args[2]) do
    if n % total == id then lines[#lines + 1] = line end
    n = n + 1
  end
  index = 0
  statuses = {}
  exhausted = false
end

function delay()
  if period <= 0 then return 0 end
  local now = now_ms()
  local slot = math.max(next_free, now)
  next_free = slot + period
  return math.floor(slot - now + 0.5)
end

function request()
  index = index + 1
  local line = lines[index]
  if line == nil then
    exhausted = true
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  local token, key, body = line:match("^([^\t]+)\t([^\t]+)\t(.*)$")
  return wrk.format("POST", "/v1/payments/qr", {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = key,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    if thread:get("exhausted") then
      io.write("ran out of prepared payments before the end: requests/s above is a lower bound; prepare more\n")
    end
    local counted = thread:get("statuses")
    for status, count in pairs(counted) do totals[status] = (totals[status] or 0) + count end
  end
  local unexpected = false
  for status, count in pairs(totals) do
    io.write(string.format("status %d: %d\n", status, count))
    if status ~= 201 and status ~= 200 then unexpected = true end
  end
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("p%d %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  if unexpected then
    io.write("a payment was not answered 201\n")
    os.exit(1)
  end
end
