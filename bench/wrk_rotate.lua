-- wrk script for the bench harness: rotates through prebuilt requests, reports JSON.
--
-- Environment (read in each wrk thread's init):
--   BENCH_METHOD  HTTP method (GET or POST)
--   BENCH_PATHS   file with one request path per line (optional; default: the URL's path)
--   BENCH_BODIES  file with one JSON body per line (optional)
-- The request count is max(#paths, #bodies); request i uses path i and body i (wrapping).
-- Requests are formatted once at start, so the per-request cost in Lua is a table lookup.

local requests_ = {}
local count = 0
local next_index = 0

local function read_lines(path)
  local lines = {}
  if path == nil or path == "" then
    return lines
  end
  for line in io.lines(path) do
    if line ~= "" then
      lines[#lines + 1] = line
    end
  end
  return lines
end

function init(args)
  local method = os.getenv("BENCH_METHOD") or "GET"
  local paths = read_lines(os.getenv("BENCH_PATHS"))
  local bodies = read_lines(os.getenv("BENCH_BODIES"))
  if #paths == 0 then
    paths = { wrk.path }
  end
  local headers = {}
  if #bodies > 0 then
    headers["Content-Type"] = "application/json"
  end
  count = math.max(#paths, #bodies)
  for i = 1, count do
    local path = paths[(i - 1) % #paths + 1]
    local body = nil
    if #bodies > 0 then
      body = bodies[(i - 1) % #bodies + 1]
    end
    requests_[i] = wrk.format(method, path, headers, body)
  end
  -- Threads start at different offsets so they do not ask for the same thing in lockstep.
  next_index = (offset or 0) % count
end

function setup(thread)
  thread_counter = (thread_counter or 0) + 1
  thread:set("offset", thread_counter * 7919)
end

function request()
  next_index = next_index % count + 1
  return requests_[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,'
      .. '"p50":%d,"p90":%d,"p95":%d,"p99":%d,"p999":%d}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)
  ))
end
