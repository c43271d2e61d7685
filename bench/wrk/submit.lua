-- wrk script: POST /v1/submissions, each request a new message_id.
-- TOKEN (an API key) and BATCH (submissions per request; 1 = single POST)
-- come from the environment.
local token = os.getenv("TOKEN")
local batch = tonumber(os.getenv("BATCH") or "1")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
local now = os.date("!%Y-%m-%dT%H:%M:%SZ")

local function submission()
  n = n + 1
  return string.format('{"message_id":"wrk-%d-%d-%d","study_id":"ONC-301","site_id":"SITE-012",' ..
    '"subject_id":"ONC-301-012-%04d","instrument":"PRO-CTCAE","submitted_at":"%s","source":"app",' ..
    '"items":[{"code":"PAIN_SEVERITY","value":2},{"code":"NAUSEA_FREQUENCY","value":1},' ..
    '{"code":"FATIGUE_SEVERITY","value":3},{"code":"DIARRHEA_FREQUENCY","value":0},' ..
    '{"code":"FATIGUE_INTERFERENCE","value":1},{"code":"NAUSEA_SEVERITY","value":1}]}', start, tid, n, n % 5000, now)
end

function init(args)
  start = os.time()
  headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

function request()
  if batch == 1 then
    return wrk.format("POST", "/v1/submissions", headers, submission())
  end
  local items = {}
  for i = 1, batch do items[i] = submission() end
  return wrk.format("POST", "/v1/submissions:batch", headers, '{"submissions":[' .. table.concat(items, ",") .. ']}')
end

local bad = 0
function response(status, headers, body)
  if (batch == 1 and status ~= 202) or (batch > 1 and (status ~= 200 or not string.find(body, '"failed":0', 1, true))) then
    bad = bad + 1
    if bad <= 3 then io.stderr:write("unexpected answer " .. status .. ": " .. string.sub(body, 1, 200) .. "\n") end
  end
end
