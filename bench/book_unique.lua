-- wrk script: every request books a different slot (slot ids 1..N split across threads),
-- so each 201 is a real, durable hold. Used by bench/http_bench.sh.
local threads = {}
local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  slots_per_thread = tonumber(args[1])
  counter = 0
end

function request()
  counter = counter + 1
  if counter > slots_per_thread then counter = 1 end
  local slot = thread_id * slots_per_thread + counter
  return wrk.format("POST", "/booking", {["Content-Type"] = "application/json"},
    '{"slotId":' .. slot .. ',"patientName":"Load Test"}')
end

local created, refused = 0, 0
function response(status, headers, body)
  if status == 201 then created = created + 1 else refused = refused + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("wrk: requests=%d p50_us=%d p99_us=%d\n", summary.requests,
    latency:percentile(50), latency:percentile(99)))
end
