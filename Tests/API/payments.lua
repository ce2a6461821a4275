-- wrk script for Tests/API/load.sh: each thread sends its own share of the prepared QR
-- payments (qdwallet-bench api-load: one signed payment a line), each exactly once, and
-- counts the answers by status. Arguments: THREADS FILE [DELAY-MS per connection].
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  local total = tonumber(args[1])
  pause = tonumber(args[3] or "0")
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
  return pause
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
