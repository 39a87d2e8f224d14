-- wrk script: every request books a different slot, so each 201 is a real, durable hold.
-- args: slots_per_thread [first_slot_id (1)] [per_partition (0)]. Thread t books
-- first_slot_id + t * slots_per_thread + 0, 1, 2, ...; after slots_per_thread requests it
-- starts over on the same slots, which then answer 409: a run that used up its slots shows
-- it. With per_partition 1, thread t books partition t instead: t * 2^40 + first_slot_id +
-- 0, 1, 2, ... (ids carry their partition in bits 40 and up; bench/partitions_ab.sh).
-- done() prints the replies by status over all threads, e.g.
--   wrk-status: total=1000 s2xx=990 s201=990 s409=10 other=0 p50_us=812 p99_us=2310
-- Used by bench/run (slotd and hello_server alike, so both pay the same Lua cost),
-- bench/http_bench.sh and bench/compare_baseline.sh.
local threads = {}
local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  slots_per_thread = tonumber(args[1])
  first_slot_id = tonumber(args[2] or "1")
  per_partition = args[3] == "1"
  counter = 0
  n2xx, n201, n409, nother = 0, 0, 0, 0
end

function request()
  counter = counter + 1
  if counter > slots_per_thread then counter = 1 end
  local slot = first_slot_id + thread_id * slots_per_thread + counter - 1
  if per_partition then slot = thread_id * 1099511627776 + first_slot_id + counter - 1 end
  return wrk.format("POST", "/booking", {["Content-Type"] = "application/json"},
    '{"slotId":' .. slot .. ',"patientName":"Load Test"}')
end

function response(status, headers, body)
  if status >= 200 and status < 300 then n2xx = n2xx + 1 end
  if status == 201 then
    n201 = n201 + 1
  elseif status == 409 then
    n409 = n409 + 1
  elseif status < 200 or status >= 300 then
    nother = nother + 1
  end
end

function done(summary, latency, requests)
  local s2xx, s201, s409, other = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    s2xx = s2xx + thread:get("n2xx")
    s201 = s201 + thread:get("n201")
    s409 = s409 + thread:get("n409")
    other = other + thread:get("nother")
  end
  io.write(string.format("wrk-status: total=%d s2xx=%d s201=%d s409=%d other=%d p50_us=%d p99_us=%d\n",
    summary.requests, s2xx, s201, s409, other, latency:percentile(50), latency:percentile(99)))
end
