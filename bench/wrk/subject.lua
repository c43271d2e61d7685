-- wrk script: GET /v1/subjects/{id} for random subjects of SUBJECTS
-- (ids "BENCH-<n>", 0 <= n < SUBJECTS), with the read key in TOKEN.
local n = tonumber(os.getenv("SUBJECTS") or "5000")
local headers = { ["Authorization"] = "Bearer " .. os.getenv("TOKEN") }
function request()
  return wrk.format("GET", "/v1/subjects/BENCH-" .. math.random(0, n - 1), headers)
end
