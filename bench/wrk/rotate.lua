-- wrk script: rotate over the URL paths listed in a file (one a line), so a run spreads over
-- many artifacts instead of hammering one. Usage:
--   wrk -t1 -c8 -d10s --latency -s bench/wrk/rotate.lua http://127.0.0.1:PORT -- paths.txt
-- At the end it prints one line "WRKJSON {...}" with the counts and latency percentiles (µs).
local paths = {}
local idx = 0

function init(args)
  local file = args[1]
  local f = assert(io.open(file, "r"), "cannot open " .. tostring(file))
  for line in f:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  f:close()
  assert(#paths > 0, "no paths in " .. file)
  -- Each thread (there is one by default) starts at a different place.
  idx = (tonumber(args[2]) or 0) % #paths
end

function request()
  idx = idx % #paths + 1
  return wrk.format("GET", paths[idx])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
