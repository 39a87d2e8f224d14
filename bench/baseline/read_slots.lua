-- wrk script: GET /slots/:doctorId?from=&to= for one day of one doctor, the read a patient
-- makes before booking. Each thread cycles through 4096 paths drawn in init() from a fixed
-- seed, so slotd and the baseline get the very same requests. Used by
-- bench/compare_baseline.sh.
-- args: doctors slots_per_doctor slot_minutes base_epoch_seconds
local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

function init(args)
  local doctors = tonumber(args[1])
  local per_doctor = tonumber(args[2])
  local minutes = tonumber(args[3])
  local base = tonumber(args[4])
  local days = math.max(1, math.floor(per_doctor * minutes / 1440))
  math.randomseed(4242 + thread_id)
  paths = {}
  for i = 1, 4096 do
    local doctor = math.random(1, doctors)
    local from = base + math.random(0, days - 1) * 86400
    paths[i] = string.format("/slots/%d?from=%s&to=%s", doctor,
      os.date("!%Y-%m-%dT%H:%M:%S.000Z", from), os.date("!%Y-%m-%dT%H:%M:%S.000Z", from + 86400))
  end
  n = 0
end

function request()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
